"""A dependency-free PNG line plot (zlib + struct): axes with numbered ticks and a few coloured curves.

    caption = line_plot("loss.png", {"vibetensor": losses_a, "torch": losses_b}, title="loss")
    print(caption)      # which colour is which curve (the picture has no legend text)
"""
import math
import struct
import zlib

COLOURS = [("blue", (31, 119, 180)), ("orange", (255, 127, 14)), ("green", (44, 160, 44)), ("red", (214, 39, 40)),
           ("purple", (148, 103, 189)), ("brown", (140, 86, 75))]
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (225, 225, 225)

# 3x5 bitmap digits for tick labels, one row string per pixel row ('#' = ink)
GLYPHS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"), "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"), "7": ("###", "..#", "..#", "..#", "..#"),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "###"),
    ".": ("...", "...", "...", "...", ".#."), "-": ("...", "...", "###", "...", "..."),
    "e": ("...", "###", "#.#", "##.", "###"), " ": ("...", "...", "...", "...", "..."),
}


def encode_png(width, height, rgb):
    """PNG bytes of an 8-bit RGB image given as width*height*3 bytes, rows top to bottom."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    stride = 3 * width
    raw = b"".join(b"\x00" + bytes(rgb[y * stride:(y + 1) * stride]) for y in range(height))  # filter 0 per row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)   # 8-bit truecolour, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


class Canvas:
    def __init__(self, width, height):
        self.width, self.height = width, height
        self.rgb = bytearray(WHITE * (width * height))

    def dot(self, x, y, colour, r=0):
        for yy in range(y - r, y + r + 1):
            for xx in range(x - r, x + r + 1):
                if 0 <= xx < self.width and 0 <= yy < self.height:
                    i = 3 * (yy * self.width + xx)
                    self.rgb[i:i + 3] = bytes(colour)

    def line(self, x0, y0, x1, y1, colour, r=0):
        """Bresenham's line, `r` pixels thick on each side."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        while True:
            self.dot(x0, y0, colour, r)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err, x0 = err + dy, x0 + sx
            if e2 <= dx:
                err, y0 = err + dx, y0 + sy

    def text(self, x, y, s, colour=BLACK, scale=2):
        """Digits at (x, y) = top-left; characters without a glyph are skipped."""
        for ch in s:
            for row, bits in enumerate(GLYPHS.get(ch, GLYPHS[" "])):
                for col, b in enumerate(bits):
                    if b == "#":
                        for yy in range(scale):
                            for xx in range(scale):
                                self.dot(x + col * scale + xx, y + row * scale + yy, colour)
            x += 4 * scale

    def png(self):
        return encode_png(self.width, self.height, self.rgb)


def nice_ticks(lo, hi, n=5):
    """About n round tick values enclosing [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)   # ticks enclose [lo, hi]
    return [i * step for i in range(first, last + 1)]


def _label(v):
    s = f"{v:.6g}"
    return s if len(s) <= 6 else f"{v:.1e}".replace("+0", "").replace("+", "")


def line_plot(path, curves, width=800, height=480, title=None):
    """Write `curves` ({label: sequence of y}, x = 0, 1, 2... or {label: (xs, ys)}) as a PNG line plot.
    Returns the caption naming each curve's colour. Non-finite points are skipped."""
    if len(curves) > len(COLOURS):
        raise ValueError(f"line_plot: at most {len(COLOURS)} curves, got {len(curves)}")
    series = {}
    for label, c in curves.items():
        xs, ys = c if isinstance(c, tuple) else (range(len(c)), c)
        series[label] = [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(float(y))]
    points = [p for pts in series.values() for p in pts]
    if not points:
        raise ValueError("line_plot: no finite points to plot")
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    xt, yt = nice_ticks(x_lo, x_hi), nice_ticks(y_lo, y_hi)
    x_lo, x_hi = min(x_lo, xt[0]), max(x_hi, xt[-1])
    y_lo, y_hi = min(y_lo, yt[0]), max(y_hi, yt[-1])
    if x_hi == x_lo:
        x_hi = x_lo + 1.0
    if y_hi == y_lo:
        y_hi = y_lo + 1.0
    left, right, top, bottom = 70, width - 20, 20, height - 40          # the plotting area
    px = lambda x: round(left + (x - x_lo) / (x_hi - x_lo) * (right - left))   # noqa: E731
    py = lambda y: round(bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top))  # noqa: E731
    cv = Canvas(width, height)
    for v in yt:                                                      # grid, ticks and labels
        cv.line(left, py(v), right, py(v), GREY)
        s = _label(v)
        cv.text(left - 8 - 8 * len(s), py(v) - 5, s)
    for v in xt:
        cv.line(px(v), top, px(v), bottom, GREY)
        s = _label(v)
        cv.text(px(v) - 4 * len(s), bottom + 8, s)
    cv.line(left, top, left, bottom, BLACK)                           # axes
    cv.line(left, bottom, right, bottom, BLACK)
    caption = []
    for (label, pts), (name, colour) in zip(series.items(), COLOURS):
        for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
            cv.line(px(x0), py(y0), px(x1), py(y1), colour, r=1 if len(pts) < 400 else 0)
        if len(pts) == 1:
            cv.dot(px(pts[0][0]), py(pts[0][1]), colour, r=2)
        caption.append(f"{name} = {label}")
    with open(path, "wb") as f:
        f.write(cv.png())
    return f"{title + ': ' if title else ''}{path}: " + ", ".join(caption)
