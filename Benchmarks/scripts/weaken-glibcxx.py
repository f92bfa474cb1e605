#!/usr/bin/env python3
"""Marks one symbol-version requirement of an ELF shared library as weak (vna_flags |= VER_FLG_WEAK).

TorchSharp 0.107.0's libLibTorchSharp.so requires GLIBCXX_3.4.32, which Debian 12's libstdc++ (3.4.30) lacks; only the
marker symbol std::ios_base_library_init uses it, so a weak requirement lets the library load. Patches the file in place.
usage: weaken-glibcxx.py LIBRARY [VERSION]   (VERSION defaults to GLIBCXX_3.4.32)
"""
import struct
import sys

SHT_GNU_VERNEED = 0x6FFFFFFE
VER_FLG_WEAK = 0x2


def main(path, version="GLIBCXX_3.4.32"):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            sys.exit(f"{path}: not a little-endian ELF64 file")
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        changed = 0
        for (_, sh_type, _, _, off, _, link, count, _, _) in sections:
            if sh_type != SHT_GNU_VERNEED:
                continue
            strtab = sections[link][4]
            vn = off
            for _ in range(count):
                _, cnt, _, aux, nxt = struct.unpack_from("<HHIII", data, vn)
                a = vn + aux
                for _ in range(cnt):
                    _, flags, _, name, anext = struct.unpack_from("<IHHII", data, a)
                    end = data.index(b"\0", strtab + name)
                    if data[strtab + name:end].decode() == version and not flags & VER_FLG_WEAK:
                        struct.pack_into("<H", data, a + 4, flags | VER_FLG_WEAK)
                        changed += 1
                    a += anext
                vn += nxt
        f.seek(0)
        f.write(data)
    print(f"{path}: {changed} requirement(s) of {version} marked weak")


if __name__ == "__main__":
    main(*sys.argv[1:])
