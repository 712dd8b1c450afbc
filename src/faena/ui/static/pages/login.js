"use strict";
// Sign in: check the key against the API, keep it in sessionStorage (this tab only).
document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("key");
  const error = document.getElementById("login-error");
  const value = input.value.trim();
  error.hidden = true;
  try {
    await Faena.api("/v1/stats", { key: value });
  } catch (err) {
    error.textContent = err.status === 401 ? "This key is not valid." : err.message;
    error.hidden = false;
    return;
  }
  sessionStorage.setItem(Faena.KEY, value);
  sessionStorage.removeItem("faena.features");
  sessionStorage.removeItem("faena.tenant");
  const next = new URLSearchParams(location.search).get("next");
  location.href = next && next.startsWith("/ui") ? next : Faena.UI + "/";
});
