# SPDX-License-Identifier: MIT
"""`pcapd merge` against `mergecap -w`: the same packets in the same order, with
the same bytes, lengths and timestamps (compared per frame, whatever format
each tool chose to write), and clean failures for bad input. Needs no root."""

import glob
import os
import subprocess

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter, RawPcapNgReader, RawPcapReader

CORPUS = os.environ.get(
    "PCAPD_CORPUS_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "pcap", "tcpdump-tests"))


def frames(path):
    """[(ts_ns, wirelen, bytes)] of a pcap or pcapng file, read with scapy."""
    out = []
    reader = RawPcapReader(path)
    try:
        for data, meta in reader:
            if isinstance(reader, RawPcapNgReader):
                t = (meta.tshigh << 32) | meta.tslow
                res = meta.tsresol
                ts = (t // res) * 10**9 + (t % res) * 10**9 // res
            else:
                ts = meta.sec * 10**9 + meta.usec * (1 if reader.nano else 1000)
            out.append((ts, meta.wirelen, bytes(data)))
    finally:
        reader.close()
    return out


def mergecap(tmp_path, inputs, name="expected.pcapng"):
    out = str(tmp_path / name)
    subprocess.run(["mergecap", "-w", out] + list(inputs), check=False, capture_output=True, timeout=60)
    return out


def merge(pcapd, args, stdin=None, timeout=60):
    return subprocess.run([pcapd, "merge"] + list(args), stdin=stdin, capture_output=True, timeout=timeout)


def assert_like_mergecap(pcapd, tmp_path, inputs, extra=()):
    """Frame for frame equal to mergecap's output.

    On equal timestamps from different inputs pcapd keeps input order by
    default (the contract in src/pcap/merge.h) while mergecap takes the *last*
    tied input first; `--ties mergecap` selects mergecap's rule, so the
    comparison here is exact. test_interleaved_ties_and_backwards pins the
    default order down separately.
    """
    ours = str(tmp_path / "ours.out")
    p = merge(pcapd, ["-w", ours, "--ties", "mergecap"] + list(extra) + list(inputs))
    assert p.returncode == 0, p.stderr.decode()
    expected = frames(mergecap(tmp_path, inputs))
    got = frames(ours)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, "frame %d differs: ours %r, mergecap %r" % (i, g[:2], e[:2])
    return got


def write_pcap(path, packets, nano=False):
    """packets: [(ts_ns, payload marker)] as Ethernet/IPv4/UDP frames."""
    w = PcapWriter(str(path), nano=nano, linktype=1, sync=True)
    w.write_header(None)  # write_packet() alone leaves the file header out
    for ts, mark in packets:
        pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2") / \
            UDP(sport=1000, dport=2000) / mark.encode()
        # Integer seconds and fraction: no float rounding.
        w.write_packet(bytes(pkt), sec=ts // 10**9, usec=(ts % 10**9) if nano else (ts % 10**9) // 1000)
    w.close()
    return str(path)


def to_pcapng(src, dst):
    subprocess.run(["editcap", "-F", "pcapng", src, str(dst)], check=True, timeout=30)
    return str(dst)


def corpus(*names):
    paths = [os.path.join(CORPUS, n) for n in names]
    for p in paths:
        assert os.path.exists(p), "corpus file %s missing" % p
    return paths


def test_corpus_files_mixed_formats(pcapd, tmp_path):
    pcaps = sorted(glob.glob(os.path.join(CORPUS, "*.pcap")))
    ngs = sorted(glob.glob(os.path.join(CORPUS, "*.pcapng")))
    assert len(pcaps) >= 4 and len(ngs) >= 2, "corpus missing in %s" % CORPUS
    # Ethernet captures of several sizes, plus pcapng files.
    inputs = corpus("802.1ad_QinQ.pcap", "3560_CDP.pcap", "afs.pcap", "pim-packet-assortment.pcap")
    inputs += [ngs[0], ngs[len(ngs) // 2]]
    got = assert_like_mergecap(pcapd, tmp_path, inputs)
    assert len(got) > 50


def test_interleaved_ties_and_backwards(pcapd, tmp_path):
    base = 1700000000 * 10**9
    a = write_pcap(tmp_path / "a.pcap", [(base + i * 1000_000, "a%d" % i) for i in range(50)])
    # b ties with a at every 10th packet and has finer-than-µs stamps.
    b = write_pcap(tmp_path / "b.pcap", [(base + i * 2000_000 + (0 if i % 5 == 0 else 137), "b%d" % i)
                                         for i in range(30)], nano=True)
    # c goes backwards in the middle: its own order must be kept.
    c_ts = [base + 500, base + 30_000_000, base + 10_000_000, base + 10_000_000, base + 40_000_000, base + 1]
    c = write_pcap(tmp_path / "c.pcap", [(t, "c%d" % i) for i, t in enumerate(c_ts)])
    c_ng = to_pcapng(c, tmp_path / "c.pcapng")
    got = assert_like_mergecap(pcapd, tmp_path, [a, b, c_ng])
    assert len(got) == 86
    # Nanosecond input: the default output keeps nanoseconds.
    assert any(ts % 1000 for ts, _, _ in got)
    theirs = [f[2][42:] for f in got]
    assert theirs[:3] == [b"c0", b"b0", b"a0"]  # mergecap: last tied input first

    # Default: ties keep input order; each input's own order is kept.
    p = merge(pcapd, ["-w", str(tmp_path / "default.pcap"), a, b, c_ng])
    assert p.returncode == 0, p.stderr.decode()
    mine = frames(str(tmp_path / "default.pcap"))
    marks = [f[2][42:] for f in mine]
    assert sorted(mine) == sorted(got)
    assert marks[:3] == [b"a0", b"b0", b"c0"]
    assert marks.index(b"a30") < marks.index(b"b15") < marks.index(b"c1")
    assert marks.index(b"c1") < marks.index(b"c2") < marks.index(b"c3") < marks.index(b"c4") < marks.index(b"c5")
    for x in (b"a", b"b", b"c"):
        own = [m for m in marks if m[:1] == x]
        assert own == sorted(own, key=lambda m: int(m[1:]))


def test_same_input_twice_and_pcapng_output(pcapd, tmp_path):
    a = corpus("3560_CDP.pcap")[0]
    got = assert_like_mergecap(pcapd, tmp_path, [a, a], extra=["--format", "pcapng"])
    with open(str(tmp_path / "ours.out"), "rb") as f:
        assert f.read(4) == b"\x0a\x0d\x0d\x0a"
    assert len(got) % 2 == 0


def test_stdin_and_stdout(pcapd, tmp_path):
    a, b = corpus("802.1ad_QinQ.pcap", "3560_CDP.pcap")
    with open(a, "rb") as f:
        p = merge(pcapd, ["-w", "-", "-", b], stdin=f)
    assert p.returncode == 0, p.stderr.decode()
    out = tmp_path / "stdout.pcap"
    out.write_bytes(p.stdout)
    assert frames(str(out)) == frames(mergecap(tmp_path, [a, b]))
    # A pipe, not a file: the reader copies records instead of mapping them.
    cat = subprocess.Popen(["cat", a], stdout=subprocess.PIPE)
    p = merge(pcapd, ["-w", str(tmp_path / "pipe.pcap"), b, "-"], stdin=cat.stdout)
    cat.wait(timeout=10)
    assert p.returncode == 0, p.stderr.decode()
    assert frames(str(tmp_path / "pipe.pcap")) == frames(mergecap(tmp_path, [b, a], "e2.pcapng"))


def test_truncated_input(pcapd, tmp_path):
    src = corpus("pim-packet-assortment.pcap")[0]
    cut = tmp_path / "cut.pcap"
    data = open(src, "rb").read()
    cut.write_bytes(data[:len(data) - 7])
    other = corpus("3560_CDP.pcap")[0]
    p = merge(pcapd, ["-w", str(tmp_path / "ours.out"), str(cut), other])
    assert p.returncode == 0, p.stderr.decode()
    # warned about without -v: a user must learn that an input was cut short
    assert b"1 input(s) ended in a truncated record" in p.stderr
    expected = frames(mergecap(tmp_path, [str(cut), other]))
    assert frames(str(tmp_path / "ours.out")) == expected
    assert len(expected) == len(frames(src)) - 1 + len(frames(other))


def assert_no_output(tmp_path, out):
    assert not os.path.exists(out)
    assert [n for n in os.listdir(str(tmp_path)) if n.startswith(".")] == []


def test_bad_inputs(pcapd, tmp_path):
    good = corpus("3560_CDP.pcap")[0]
    out = str(tmp_path / "out.pcap")

    p = merge(pcapd, ["-w", out, good, str(tmp_path / "missing.pcap")])
    assert p.returncode == 1
    assert b"missing.pcap" in p.stderr and len(p.stderr.splitlines()) == 1
    assert_no_output(tmp_path, out)

    notpcap = tmp_path / "notpcap.txt"
    notpcap.write_bytes(b"this is not a capture file at all\n")
    p = merge(pcapd, ["-w", out, str(notpcap), good])
    assert p.returncode == 1
    assert b"notpcap.txt" in p.stderr
    assert_no_output(tmp_path, out)

    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    p = merge(pcapd, ["-w", out, good, str(empty)])
    assert p.returncode == 1 and b"empty.pcap" in p.stderr
    empty.unlink()
    notpcap.unlink()
    assert_no_output(tmp_path, out)

    p = merge(pcapd, ["-w", str(tmp_path / "no-such-dir" / "out.pcap"), good])
    assert p.returncode == 1
    assert b"no-such-dir" in p.stderr

    # Classic pcap cannot hold two link types: the error names both inputs.
    raw = corpus("02-sunrise-sunset-esp.pcap")[0]
    sll = [f for f in sorted(glob.glob(os.path.join(CORPUS, "*.pcap")))
           if open(f, "rb").read(24)[20:24] in (b"\x71\x00\x00\x00", b"\x00\x00\x00\x71")]
    if sll:
        p = merge(pcapd, ["-w", out, "--format", "pcap", raw, sll[0]])
        assert p.returncode == 1
        assert os.path.basename(sll[0]).encode() in p.stderr
        assert_no_output(tmp_path, out)
        # Without --format the output becomes pcapng, like mergecap.
        assert_like_mergecap(pcapd, tmp_path, [raw, sll[0]])


def test_usage_errors(pcapd, tmp_path):
    good = corpus("3560_CDP.pcap")[0]
    assert merge(pcapd, [good]).returncode == 2                      # no -w
    assert merge(pcapd, ["-w", str(tmp_path / "o")]).returncode == 2  # no input
    assert merge(pcapd, ["-w", str(tmp_path / "o"), "--format", "xml", good]).returncode == 2
    assert merge(pcapd, ["-w", str(tmp_path / "o"), "-", "-"]).returncode == 2
    assert os.listdir(str(tmp_path)) == []


def test_output_replaced_atomically(pcapd, tmp_path):
    a = corpus("3560_CDP.pcap")[0]
    out = tmp_path / "out.pcap"
    out.write_bytes(b"old")
    p = merge(pcapd, ["-w", str(out), a])
    assert p.returncode == 0
    assert frames(str(out)) == frames(a)


def test_time_stamp_precision(pcapd, tmp_path):
    base = 1700000000 * 10**9
    ns = write_pcap(tmp_path / "ns.pcap", [(base + 123456789, "n0"), (base + 223456789, "n1")], nano=True)
    out = str(tmp_path / "o.pcap")
    for args, magic, stamps in (
            ([], b"\x4d\x3c\xb2\xa1", [base + 123456789, base + 223456789]),
            (["--time-stamp-precision", "micro"], b"\xd4\xc3\xb2\xa1", [base + 123456000, base + 223456000]),
            (["--format", "pcap", "--time-stamp-precision", "nano"], b"\x4d\x3c\xb2\xa1",
             [base + 123456789, base + 223456789])):
        p = merge(pcapd, ["-w", out] + args + [ns])
        assert p.returncode == 0, p.stderr.decode()
        with open(out, "rb") as f:
            assert f.read(4) == magic
        assert [t for t, _, _ in frames(out)] == stamps
    assert merge(pcapd, ["-w", out, "--format", "pcapng", "--time-stamp-precision", "nano", ns]).returncode == 2


def test_many_inputs_pcapng_output(pcapd, tmp_path):
    """300 inputs: 300 IDBs (more than fit the first few KiB) precede the
    first packet, which may come from the last input."""
    base = 1700000000 * 10**9
    n = 300
    inputs = [write_pcap(tmp_path / ("in%03d.pcap" % i), [(base + (n - i) * 1000, "p%d" % i)]) for i in range(n)]
    out = str(tmp_path / "many.pcapng")
    p = merge(pcapd, ["-w", out, "--format", "pcapng"] + inputs)
    assert p.returncode == 0, p.stderr.decode()
    got = frames(out)
    assert [f[2][42:] for f in got] == [("p%d" % i).encode() for i in reversed(range(n))]
    t = subprocess.run(["tshark", "-r", out, "-T", "fields", "-e", "frame.interface_id"],
                       capture_output=True, timeout=60)
    assert t.returncode == 0, t.stderr.decode()
    assert t.stdout.split() == [str(i).encode() for i in reversed(range(n))]


def test_empty_merge_counts_its_header(pcapd, tmp_path):
    """-v reports the bytes written, the file header of an empty merge included."""
    a = write_pcap(tmp_path / "a.pcap", [])
    for fmt in ("pcap", "pcapng"):
        out = tmp_path / ("empty." + fmt)
        p = merge(pcapd, ["-v", "-w", str(out), "--format", fmt, a, a])
        assert p.returncode == 0, p.stderr.decode()
        size = out.stat().st_size
        assert size > 0
        assert (", %d bytes from 2 inputs" % size).encode() in p.stderr, p.stderr.decode()


def test_stdin_twice_is_a_usage_error(pcapd, tmp_path):
    p = merge(pcapd, ["-w", str(tmp_path / "o"), "-", "-"])
    assert p.returncode == 2
    assert p.stderr.startswith(b"pcapd: merge: standard input"), p.stderr.decode()
    assert os.listdir(str(tmp_path)) == []


def _write_pcap(path, seed, n):
    """A classic µs pcap of n Ethernet frames with rising timestamps."""
    import struct
    recs = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for i in range(n):
        data = bytes([(seed + i + k) & 0xFF for k in range(60 + (i * 37) % 1400)])
        recs.append(struct.pack("<IIII", 1700000000, 2 * i + seed, len(data), len(data)) + data)
    with open(path, "wb") as f:
        f.write(b"".join(recs))


def test_output_is_cut_to_its_exact_size(pcapd, tmp_path):
    """The output is preallocated to the inputs' size and cut after the merge:
    no byte of the allocation may remain. Two classic inputs with one header
    format merge into exactly their records behind one 24-byte header."""
    a, b = str(tmp_path / "a.pcap"), str(tmp_path / "b.pcap")
    _write_pcap(a, 0, 500)
    _write_pcap(b, 1, 700)
    out = tmp_path / "out.pcap"
    p = merge(pcapd, ["-w", str(out), a, b])
    assert p.returncode == 0, p.stderr.decode()
    assert out.stat().st_size == os.path.getsize(a) + os.path.getsize(b) - 24
    assert len(frames(str(out))) == 1200
    # larger than the inputs (pcapng adds block framing): the rest is appended
    out_ng = tmp_path / "out.pcapng"
    p = merge(pcapd, ["--format", "pcapng", "-w", str(out_ng), a, b])
    assert p.returncode == 0, p.stderr.decode()
    assert len(frames(str(out_ng))) == 1200
    assert [f[2] for f in frames(str(out_ng))] == [f[2] for f in frames(str(out))]


def _tshark_fields(path, *fields):
    cmd = ["tshark", "-n", "-r", path, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines()]


def _isbs(path):
    """{interface id: {option code: value}} of the ISBs of a little-endian pcapng file."""
    import struct
    data = open(path, "rb").read()
    out, o = {}, 0
    while o < len(data):
        btype, blen = struct.unpack_from("<II", data, o)
        if btype == 5:
            ifid = struct.unpack_from("<I", data, o + 8)[0]
            opts, p = {}, o + 20
            while p < o + blen - 4:
                code, n = struct.unpack_from("<HH", data, p)
                if code == 0:
                    break
                if code in (2, 3):
                    hi, lo = struct.unpack_from("<II", data, p + 4)
                    opts[code] = (hi << 32) | lo
                elif code in (4, 5):
                    opts[code] = struct.unpack_from("<Q", data, p + 4)[0]
                p += 4 + ((n + 3) & ~3)
            out[ifid] = opts
        o += blen
    return out


def test_pcapng_annotations(pcapd, tmp_path):
    """--format pcapng keeps each input's interfaces: names set per input
    (NAME, or NAME/OWN for interfaces the input names itself), descriptions,
    the input's timestamp resolution, and an ISB with the counters given
    (start and end from the interface's first and last packet); tshark shows
    every packet's interface; a second merge keeps all of it."""
    a, b, c = str(tmp_path / "a.pcap"), str(tmp_path / "b.pcap"), str(tmp_path / "c.pcapng")
    write_pcap(a, [(1_700_000_000_000_000_000 + i * 2_000_000_000, "a%d" % i) for i in range(3)])
    write_pcap(b, [(1_700_000_001_000_000_000 + i * 2_000_000_000, "b%d" % i) for i in range(3)], nano=True)
    # an input that names its own interface (and has two: pcapd's writer via a merge)
    first = str(tmp_path / "first.pcapng")
    p = merge(pcapd, ["-w", first, "--format", "pcapng", "--name", "eth7", a])
    assert p.returncode == 0, p.stderr.decode()
    out = str(tmp_path / "all.pcapng")
    p = merge(pcapd, ["-w", out, "--name", "web01/eth0", "--description", "colo ord02, filter udp",
                      "--stats", "100:7", a, "--name", "web02", "--stats", "50:0", b, "--name", "agent3", first])
    assert p.returncode == 0, p.stderr.decode()
    rows = _tshark_fields(out, "frame.interface_name", "frame.interface_description", "data.data")
    # equal timestamps (a and first) keep input order
    assert [r[0] for r in rows] == ["web01/eth0", "agent3/eth7", "web02"] * 3
    assert [bytes.fromhex(r[2]).decode() for r in rows] == ["a0", "a0", "b0", "a1", "a1", "b1", "a2", "a2", "b2"]
    assert all(r[1] == "colo ord02, filter udp" for r in rows if r[0] == "web01/eth0")
    info = subprocess.run(["capinfos", out], capture_output=True, text=True, timeout=60).stdout
    assert "Number of interfaces in file: 3" in info
    assert "Time precision = microseconds (6)" in info and "Time precision = nanoseconds (9)" in info
    isb = _isbs(out)
    assert isb[0] == {2: 1_700_000_000_000_000, 3: 1_700_000_004_000_000, 4: 100, 5: 7}  # µs units
    assert isb[1] == {2: 1_700_000_001_000_000_000, 3: 1_700_000_005_000_000_000, 4: 50, 5: 0}  # ns
    assert 2 not in isb  # nothing known about the third input's interface
    # merged again, the interfaces, descriptions and statistics stay
    again = str(tmp_path / "again.pcapng")
    p = merge(pcapd, ["-w", again, "--format", "pcapng", out])
    assert p.returncode == 0, p.stderr.decode()
    assert _tshark_fields(again, "frame.interface_name") == [[r[0]] for r in rows]
    assert _isbs(again) == isb
    assert frames(again) == frames(out)


def test_annotation_errors(pcapd, tmp_path):
    a = str(tmp_path / "a.pcap")
    write_pcap(a, [(1_700_000_000_000_000_000, "a")])
    out = str(tmp_path / "x.pcapng")
    for args, words in ((["--format", "pcap", "--name", "x", a], "need --format pcapng"),
                        ([a, "--name", "x"], "none follows"),
                        (["--stats", "1-2", a], "--stats: '1-2' is not RECV:DROP"),
                        (["--name", "n" * 300, a], "--name: 1..256 bytes"),
                        ([a, "--bogus", a], "only --name, --description and --stats may follow")):
        p = merge(pcapd, ["-w", out] + args)
        assert p.returncode == 2 and words in p.stderr.decode(), (args, p.stderr.decode())
        assert not os.path.exists(out)
