"""Documents made by the tests, with known text: PDFs with a text layer (written byte by byte),
scanned PDFs and images (text drawn with Pillow's bundled font, so no system font is needed).
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter, ImageFont

INVOICE = [
    "Invoice 2026-0042 from Faena Supplies Ltd",
    "Total due 1,234.56 EUR by 30 November 2026",
    "The quick brown fox jumps over the lazy dog",
]
LETTER = [
    "Dear customer, thank you for your order",
    "Your parcel number is 7781 and ships today",
    "Kind regards from the operations team",
]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per entry, each line drawn in Helvetica (a real text layer)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    # 1 catalog, 2 pages, 3 font, then per page: page object, content stream.
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, lines in enumerate(pages):
        content = "BT /F1 14 Tf 72 740 Td 18 TL\n"
        content += "".join(f"({_escape(line)}) Tj T*\n" for line in lines)
        content += "ET"
        stream = content.encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {5 + 2 * i} 0 R"
            f" /Resources << /Font << /F1 3 0 R >> >> >>".encode()
        )
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
            + b"\nendstream"
        )  # fmt: skip
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


# German and Spanish text, for the OCR language option: letters English has not.
GERMAN = [
    "Rechnung Nr. 2026-0042 der Müller & Söhne GmbH",
    "Gesamtbetrag 1.234,56 Euro, fällig am 30. November",
    "Größere Straßenschäden über der Brücke gemeldet",
]
SPANISH = [
    "Factura número 2026-0042 de Suministros Peña",
    "Importe total 1.234,56 euros con vencimiento el lunes",
    "El pingüino comió piñas y jamón en la montaña",
]
# Pillow's bundled font has no glyphs beyond ASCII: accented text is drawn with Debian's
# DejaVu Sans (package fonts-dejavu-core, installed by .ci/run).
UNICODE_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def page_image(
    lines: list[str], *, width: int = 1700, size: int = 40, font_path: str | None = None
) -> Image.Image:
    """A white page with ``lines`` in black, like a clean scan at about 200 DPI."""
    font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size=size)
    image = Image.new("L", (width, 120 + len(lines) * size * 2), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((80, 60 + i * size * 2), line, font=font, fill=0)
    return image


def image_bytes(lines: list[str], fmt: str = "PNG", *, font_path: str | None = None) -> bytes:
    buf = io.BytesIO()
    page_image(lines, font_path=font_path).save(buf, fmt)
    return buf.getvalue()


def degraded_image(
    lines: list[str], *, size: int = 26, seed: int = 7, font_path: str | None = None
) -> bytes:
    """A poor scan: smaller text, rotated 1.5°, blurred, and 4 % of its pixels noise."""
    image = page_image(lines, size=size, width=1200, font_path=font_path)
    image = image.rotate(1.5, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    rnd = random.Random(seed)
    pixels = image.load()
    assert pixels is not None
    width, height = image.size
    for _ in range(int(width * height * 0.04)):
        pixels[rnd.randrange(width), rnd.randrange(height)] = rnd.choice((0, 128, 255))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def blank_image() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (800, 600), 255).save(buf, "PNG")
    return buf.getvalue()


def scanned_pdf(pages: list[list[str]]) -> bytes:
    """A PDF of page images only (no text layer), as a scanner makes."""
    images = [page_image(lines).convert("RGB") for lines in pages]
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:], resolution=200.0)
    return buf.getvalue()


def scanned_pdf_with(lines: list[str], *, font_path: str | None = None) -> bytes:
    """A one-page scanned PDF of ``lines`` drawn with ``font_path``."""
    buf = io.BytesIO()
    page_image(lines, font_path=font_path).convert("RGB").save(buf, "PDF", resolution=200.0)
    return buf.getvalue()


def mixed_pdf(text_lines: list[str], scanned_lines: list[str]) -> bytes:
    """Page 1 with a text layer, page 2 a scan."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for source in (text_pdf([text_lines]), scanned_pdf([scanned_lines])):
        for page in PdfReader(io.BytesIO(source)).pages:
            writer.add_page(page)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def encrypted_pdf(lines: list[str], password: str = "s3cret") -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(text_pdf([lines]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
