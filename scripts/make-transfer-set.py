#!/usr/bin/python3
"""make-transfer-set.py - a 3-class PNG-folder data set grouped from Fashion-MNIST,
for transfer experiments (README, "Starting from a trained model"):

    tops      T-shirt/top, pullover, coat, shirt   (classes 0, 2, 4, 6)
    footwear  sandal, sneaker, ankle boot          (classes 5, 7, 9)
    bags      bag                                  (class 8)

    scripts/make-transfer-set.py OUT [--first N] [--train N] [--test N]

train/ takes training images from index --first on (default 50000, so that a
model pre-trained with train_limit 50000 never saw them), at most --train
(default 3000); test/ takes the test split's first --test (default 2000)
matching images. Standard library only: the PNGs are written by hand
(8-bit grayscale, one IDAT chunk)."""
import gzip, os, struct, sys, zlib

SRC = "/usr/share/datasets/fashion-mnist"
GROUPS = {0: "tops", 2: "tops", 4: "tops", 6: "tops", 5: "footwear", 7: "footwear",
          9: "footwear", 8: "bags"}


def idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def find(name):
    for p in (os.path.join(SRC, name + ".gz"), os.path.join(SRC, name)):
        if os.path.exists(p):
            return p
    sys.exit(f"make-transfer-set: cannot find '{name}' in {SRC} (apt-get install dataset-fashion-mnist)")


def png(path, w, h, pixels):
    def chunk(kind, body):
        c = struct.pack(">I", len(body)) + kind + body
        return c + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)
    raw = b"".join(b"\0" + pixels[y * w:(y + 1) * w] for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write(out, split, images, labels, first, limit):
    (n, h, w), pix = idx(find(images))
    _, lab = idx(find(labels))
    counts = {}
    for i in range(first, n):
        g = GROUPS.get(lab[i])
        if g is None:
            continue
        if sum(counts.values()) >= limit:
            break
        d = os.path.join(out, split, g)
        os.makedirs(d, exist_ok=True)
        png(os.path.join(d, f"{i:05d}.png"), w, h, pix[i * h * w:(i + 1) * h * w])
        counts[g] = counts.get(g, 0) + 1
    return counts


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    out, opts = argv[0], {"--first": 50000, "--train": 3000, "--test": 2000}
    for k, v in zip(argv[1::2], argv[2::2]):
        if k not in opts:
            sys.exit(f"make-transfer-set: unknown option '{k}'")
        opts[k] = int(v)
    tr = write(out, "train", "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               opts["--first"], opts["--train"])
    te = write(out, "test", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 0, opts["--test"])
    print(f"{out}: train {tr}, test {te}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
