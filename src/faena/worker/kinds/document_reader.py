"""Reading documents: the CPU-bound half of the ``document.text`` and ``ocr`` kinds.

Everything here runs in a process of the document pool (:mod:`faena.worker.kinds.documents`),
one document per call, and returns plain data. PDFs are read with pypdf (text layers) and
rendered with pypdfium2 (for OCR); both have permissive licences, unlike PyMuPDF (AGPL).
OCR is Debian's Tesseract, run as a subprocess with TSV output, which gives each word's
confidence; ``OMP_THREAD_LIMIT=1`` keeps one page on one core, since the pool already runs
documents side by side.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import signal
import subprocess
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

OCR_TIMEOUT_S = 300.0  # per page: a runaway Tesseract is killed, the job fails
MAX_IMAGE_PIXELS = 200_000_000
MAX_RENDER_PIXELS = 60_000_000  # a rendered page (A4 at 300 DPI is 8.7 M): huge pages get less
_PDF_MAGIC = b"%PDF-"


class DocumentError(Exception):
    """The document cannot be read, for a reason a retry cannot change (corrupt, encrypted,
    no text, unsupported format)."""


@dataclass(frozen=True, slots=True)
class PageText:
    number: int
    text: str
    confidence: float | None  # mean word confidence 0-100 for OCR'd pages; None for text layers
    ocr: bool

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"number": self.number, "text": self.text}
        if self.confidence is not None:
            out["confidence"] = self.confidence
        return out


def read_document(
    data: bytes, kind: str, options: dict[str, Any], *, part: bool = False
) -> dict[str, Any]:
    """Read ``data`` (a PDF or an image) as ``kind`` with ``options`` (DocumentOptions as a
    dict). Raises DocumentError for what no retry can fix. ``part``: these pages are a share
    of the document read in several processes; finding no text in them is not an error (the
    caller judges the whole, :func:`merge_parts`)."""
    cpu_before = _cpu_s()
    _PEAK.start()
    pages_wanted = options.get("pages")
    lang = str(options.get("lang", "eng"))
    mode = str(options.get("ocr", "auto"))
    dpi = int(options.get("dpi", 300))
    if data.startswith(_PDF_MAGIC) or data[:1024].lstrip().startswith(_PDF_MAGIC):
        fmt = "pdf"
        count, pages = _read_pdf(data, pages_wanted, lang=lang, mode=mode, dpi=dpi)
    else:
        fmt = "image"
        if mode == "never":
            raise DocumentError("an image has no text layer: use ocr 'auto' or 'always'")
        count, pages = _read_image(data, pages_wanted, lang=lang)
    result = {
        "format": fmt,
        "page_count": count,
        "pages": [p.to_dict() for p in pages],
        "ocr_pages": [p.number for p in pages if p.ocr],
        "text": "\n\n".join(p.text for p in pages if p.text),
        "cpu_time_s": round(_cpu_s() - cpu_before, 4),
        "max_rss_mb": _PEAK.mb(),
    }
    if not part:
        _check_text(result, mode)
    return result


def plan_document(data: bytes, options: dict[str, Any]) -> dict[str, Any]:
    """The first step of reading in several processes: the text layers of the pages that have
    one (a part, as :func:`merge_parts` takes it) and, under ``ocr``, the pages left for OCR,
    which the caller shares among processes (``read_document(part=True)``)."""
    cpu_before = _cpu_s()
    _PEAK.start()
    mode = str(options.get("ocr", "auto"))
    if data.startswith(_PDF_MAGIC) or data[:1024].lstrip().startswith(_PDF_MAGIC):
        fmt = "pdf"
        reader = _open_pdf(data)
        with _pdf_errors():
            count = len(reader.pages)
            numbers = _select(count, options.get("pages"))
            layers = {n: _page_text(reader, n) for n in numbers} if mode != "always" else {}
        ocr = [n for n in numbers if mode == "always" or (mode == "auto" and not layers[n])]
        pages = [{"number": n, "text": layers.get(n, "")} for n in numbers if n not in ocr]
    else:
        fmt = "image"
        if mode == "never":
            raise DocumentError("an image has no text layer: use ocr 'auto' or 'always'")
        count, _ = _image_frames(data)
        ocr = _select(count, options.get("pages"))
        pages = []
    return {
        "format": fmt,
        "page_count": count,
        "pages": pages,
        "ocr_pages": [],
        "ocr": ocr,
        "cpu_time_s": round(_cpu_s() - cpu_before, 4),
        "max_rss_mb": _PEAK.mb(),
    }


def merge_parts(parts: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """One result from the results of shares of a document's pages (in page order)."""
    pages = sorted((p for part in parts for p in part["pages"]), key=lambda p: p["number"])
    result = {
        "format": parts[0]["format"],
        "page_count": parts[0]["page_count"],
        "pages": pages,
        "ocr_pages": sorted(n for part in parts for n in part["ocr_pages"]),
        "text": "\n\n".join(p["text"] for p in pages if p["text"]),
        "cpu_time_s": round(sum(part["cpu_time_s"] for part in parts), 4),
        "max_rss_mb": max(part["max_rss_mb"] for part in parts),
    }
    _check_text(result, mode)
    return result


def _check_text(result: dict[str, Any], mode: str) -> None:
    if not any(p["text"].strip() for p in result["pages"]):
        where = "the image" if result["format"] == "image" else "the PDF"
        hint = "" if mode != "never" else " (it may be scanned: use ocr 'auto')"
        raise DocumentError(f"no text found in {where}{hint}")


def _cpu_s() -> float:
    """CPU seconds of this process and of the Tesseract runs it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_rss_mb() -> float:
    """The lifetime peak resident memory of this process and of the children it waited for
    (Linux reports kilobytes): the fallback where a per-document peak cannot be taken."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


class _PeakMeter:
    """The peak resident memory of one reading: this process's high-water mark, reset when the
    reading starts (Linux: ``5`` written to ``/proc/self/clear_refs`` resets ``VmHWM`` to the
    current RSS), and the largest peak of the Tesseract runs it made (each one's own
    ``ru_maxrss``, from ``wait4``). So a document reports what it needed, not the largest
    document this pool process ever read. Elsewhere: the lifetime figures."""

    def __init__(self) -> None:
        self._children_kb = 0
        self._resettable = True

    def start(self) -> None:
        self._children_kb = 0
        if self._resettable:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self._resettable = False

    def child(self, max_rss_kb: int) -> None:
        self._children_kb = max(self._children_kb, max_rss_kb)

    def mb(self) -> float:
        own = _hwm_kb() if self._resettable else None
        if own is None:
            return peak_rss_mb()
        return round(max(own, self._children_kb) / 1024, 1)


def _hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


_PEAK = _PeakMeter()  # one reading at a time per pool process


def _select(count: int, wanted: Any) -> list[int]:
    if count == 0:
        raise DocumentError("the document has no pages")
    if wanted is None:
        return list(range(1, count + 1))
    numbers = [int(n) for n in wanted]
    beyond = [n for n in numbers if n > count]
    if beyond:
        raise DocumentError(f"page {beyond[0]} is beyond the end: the document has {count} page(s)")
    return numbers


# -- PDF ------------------------------------------------------------------------------------


def _read_pdf(
    data: bytes, wanted: Any, *, lang: str, mode: str, dpi: int
) -> tuple[int, list[PageText]]:
    reader = _open_pdf(data)
    with _pdf_errors():
        count = len(reader.pages)
        numbers = _select(count, wanted)
        layers = {n: _page_text(reader, n) for n in numbers} if mode != "always" else {}
    pages: list[PageText] = []
    to_ocr = [n for n in numbers if mode == "always" or (mode == "auto" and not layers[n])]
    rendered = _render_pdf(data, to_ocr, dpi) if to_ocr else {}
    for n in numbers:
        if n in rendered:
            text, confidence = ocr_image(rendered.pop(n), lang=lang, dpi=dpi)
            pages.append(PageText(n, text, confidence, ocr=True))
        else:
            pages.append(PageText(n, layers.get(n, ""), None, ocr=False))
    return count, pages


def _open_pdf(data: bytes) -> Any:
    from pypdf import PdfReader

    with _pdf_errors():
        reader = PdfReader(io.BytesIO(data), strict=False)
        _open_encrypted(reader)
        return reader


@contextlib.contextmanager
def _pdf_errors() -> Iterator[None]:
    """pypdf's errors, and what a corrupt file makes it raise, as DocumentErrors."""
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pypdf warns about recoverable oddities
            yield
    except DocumentError:
        raise
    except (FileNotDecryptedError, DependencyError) as e:
        raise DocumentError(
            f"the PDF is password-protected or its encryption unsupported: {_one_line(e)}"
        ) from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        raise DocumentError(f"the PDF is corrupt or not a PDF: {_one_line(e)}") from None
    except RecursionError:
        raise DocumentError("the PDF is corrupt: its object tree is cyclic or too deep") from None


def _open_encrypted(reader: Any) -> None:
    """An encrypted PDF opens only with an empty user password (owner-only protection)."""
    if reader.is_encrypted and not reader.decrypt(""):
        raise DocumentError("the PDF is password-protected")


def _page_text(reader: Any, number: int) -> str:
    text = reader.pages[number - 1].extract_text() or ""
    return text.strip()


def _render_pdf(data: bytes, numbers: list[int], dpi: int) -> dict[int, Any]:
    """The pages as grayscale images, rendered by PDFium (one at a time when OCR'd)."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped]

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:
        raise DocumentError(f"the PDF cannot be rendered for OCR: {_one_line(e)}") from None
    out: dict[int, Any] = {}
    try:
        for n in numbers:
            page = pdf[n - 1]
            try:
                width, height = page.get_size()  # points
                scale = min(dpi / 72, (MAX_RENDER_PIXELS / max(width * height, 1.0)) ** 0.5)
                bitmap = page.render(scale=scale, grayscale=True)
                out[n] = bitmap.to_pil()
            finally:
                page.close()
    finally:
        pdf.close()
    return out


# -- images ---------------------------------------------------------------------------------


def _read_image(data: bytes, wanted: Any, *, lang: str) -> tuple[int, list[PageText]]:
    count, frames = _image_frames(data)
    pages = []
    for n in _select(count, wanted):
        text, confidence = ocr_image(frames[n - 1], lang=lang, dpi=None)
        pages.append(PageText(n, text, confidence, ocr=True))
    return count, pages


def _image_frames(data: bytes) -> tuple[int, list[Any]]:
    """The image's frames (a TIFF may hold several pages)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            frames = [f.copy() for f in ImageSequence.Iterator(image)]
    except UnidentifiedImageError:
        raise DocumentError("not a PDF nor an image format Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DocumentError(f"the image is larger than {MAX_IMAGE_PIXELS} pixels") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DocumentError(f"the image is corrupt: {_one_line(e)}") from None
    return len(frames), frames


# -- Tesseract ------------------------------------------------------------------------------


def ocr_image(image: Any, *, lang: str, dpi: int | None) -> tuple[str, float | None]:
    """Text and mean word confidence (0-100) of one page image, from Tesseract's TSV."""
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        raise DocumentError("OCR needs Tesseract: install Debian's tesseract-ocr")
    gray = image.convert("L")
    buf = io.BytesIO()
    gray.save(buf, "PPM")  # uncompressed: cheaper to write and read than PNG
    args = [tesseract, "stdin", "stdout", "-l", lang, "--psm", "3"]
    if dpi is not None:
        args += ["--dpi", str(dpi)]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    done = _run_measured([*args, "tsv"], buf.getvalue(), OCR_TIMEOUT_S, env)
    if done.timed_out:
        raise DocumentError(f"OCR of one page took more than {OCR_TIMEOUT_S:g}s")
    _PEAK.child(done.max_rss_kb)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace")
        if "Failed loading language" in err or "Error opening data file" in err:
            raise DocumentError(
                f"OCR language {lang!r} is not installed (Debian: tesseract-ocr-<lang>)"
            )
        raise DocumentError(f"Tesseract failed: {_one_line(err) or done.returncode}")
    return parse_tsv(done.stdout.decode(errors="replace"))


@dataclass(frozen=True, slots=True)
class _Ran:
    returncode: int
    stdout: bytes
    stderr: bytes
    max_rss_kb: int  # the child's own peak resident memory
    timed_out: bool


def _run_measured(args: list[str], data: bytes, timeout_s: float, env: dict[str, str]) -> _Ran:
    """``subprocess.run`` with its input and output, reaping the child with ``wait4`` to get
    its own resource usage (``RUSAGE_CHILDREN`` only has the largest child ever); killed
    after ``timeout_s``."""
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    errors: list[bytes] = []
    lock = threading.Lock()
    state = {"reaped": False, "killed": False}

    def feed() -> None:
        with contextlib.suppress(OSError):  # the child stopped reading (it failed)
            stdin.write(data)
        with contextlib.suppress(OSError):
            stdin.close()

    def kill() -> None:
        with lock:
            if not state["reaped"]:  # never signal a pid that may be someone else's now
                state["killed"] = True
                os.kill(proc.pid, signal.SIGKILL)

    helpers = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=lambda: errors.append(stderr.read()), daemon=True),
    ]
    for t in helpers:
        t.start()
    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        out = stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        with lock:
            state["reaped"] = True
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    for t in helpers:
        t.join()
    stdout.close()
    stderr.close()
    return _Ran(proc.returncode, out, b"".join(errors), int(usage.ru_maxrss), state["killed"])


def parse_tsv(tsv: str) -> tuple[str, float | None]:
    """Words grouped into lines, lines into blocks (separated by a blank line); the mean
    confidence of the words, weighted by their length."""
    blocks: dict[tuple[int, int], dict[tuple[int, int], list[str]]] = {}
    weighted = 0.0
    letters = 0
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        word = cols[11].strip()
        if not word:
            continue
        try:
            conf = float(cols[10])
        except ValueError:
            continue
        page, block, par, line = (int(c) for c in cols[1:5])
        blocks.setdefault((page, block), {}).setdefault((par, line), []).append(word)
        if conf >= 0:
            weighted += conf * len(word)
            letters += len(word)
    text = "\n\n".join(
        "\n".join(" ".join(words) for _, words in sorted(lines.items()))
        for _, lines in sorted(blocks.items())
    )
    return text, (round(weighted / letters, 1) if letters else None)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:300]
