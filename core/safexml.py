"""XML from outside the hub: a hardened parser and DTD detection in any encoding.

A document type declaration is where entity definitions (billion laughs) and
external references (XXE) live, and nothing the hub accepts needs one, so every
reader refuses it before a parser sees it:

- ``mentions_dtd(data)`` / ``DtdScan``: ``<!DOCTYPE`` or ``<!ENTITY`` anywhere
  (for input refused wholesale: inbound SOAP requests, files crossing the bridge);
- ``declares_dtd(data)``: a DOCTYPE in the prolog only, where a parser would take
  it (for peers whose text may quote markup, e.g. a SOAP reply carrying HTML in
  CDATA);
- ``parse(data)``: both walls: the scan, then the hardened parser, then a look
  at what the parser found.

A byte search alone is blind to encodings that are not ASCII-compatible, and
libxml2 reads several: UTF-16 and UTF-32 (told by a byte order mark or, without
one, by where the NULs fall), EBCDIC, and whatever the XML declaration names
(UTF-7 hides ``<`` as ``+ADw-``). So the raw bytes are searched, and when the
document is in such an encoding its decoded text as well. A declared encoding
Python cannot decode counts as a DTD: what cannot be read cannot be vouched for.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Callable

from lxml import etree

from .errors import MessageError
from .i18n import _

#: Leading bytes enough to hold a byte order mark and the XML declaration.
HEAD = 512

_MARK = r"<\s*!\s*(?:DOCTYPE|ENTITY)"
_MARK_TEXT = re.compile(_MARK, re.IGNORECASE)
_MARK_BYTES = re.compile(_MARK.encode(), re.IGNORECASE)
_TAIL = 64  # a match cut by a chunk boundary is found again with the last bytes kept
_PROLOG_SKIP = re.compile(r"[\s\ufeff]+|<\?.*?\?>|<!--.*?-->", re.S)
_DECLARED = re.compile(rb"""^<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_ASCII = bytes(range(128))
# libxml2's names that Python spells differently.
_ALIASES = {"ucs-2": "utf-16", "iso-10646-ucs-2": "utf-16", "csunicode": "utf-16",
            "ucs-4": "utf-32", "iso-10646-ucs-4": "utf-32", "ebcdic": "cp037"}


class ForbiddenDtd(MessageError):
    """A document that declares a DTD or entities: a bad message wherever it came
    from (the SOAP connector reports a peer's as ``UnsafeXMLError``). ``reason``:
    ``doctype`` or ``entity``."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(_("the XML document declares a DTD or entities, which are not accepted"))


def hardened_parser(target: object | None = None) -> etree.XMLParser:
    """An lxml parser that loads no DTD, resolves no entity, fetches nothing from the
    network and keeps libxml2's size and depth limits (no huge_tree). With a parser
    ``target`` it builds no tree but calls the target's start/end/data."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=True,
                           remove_pis=True, collect_ids=False, target=target)


_local = threading.local()


def parse(data: bytes) -> etree._Element:
    """The root of ``data``, parsed by the hardened parser. Raises ``ForbiddenDtd``
    when the document has a DTD or entities, ``etree.XMLSyntaxError`` when it is
    not well-formed."""
    if mentions_dtd(data):
        raise ForbiddenDtd("doctype")
    parser = getattr(_local, "parser", None)
    if parser is None:  # one per thread: an lxml parser serves one document at a time
        parser = _local.parser = hardened_parser()
    root = etree.fromstring(data, parser)
    docinfo = root.getroottree().docinfo
    # The scan above should have seen these; an encoding it misread would show here.
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ForbiddenDtd("doctype")
    for _node in root.iter(etree.Entity):
        raise ForbiddenDtd("entity")
    return root


def mentions_dtd(data: bytes) -> bool:
    """Whether ``<!DOCTYPE`` or ``<!ENTITY`` (any case, spaces allowed) occurs
    anywhere in the document, in whatever encoding it is written."""
    scan = DtdScan()
    scan.feed(data)
    return scan.close()


class DtdScan:
    """``mentions_dtd`` over a stream: ``feed`` the bytes in order (each call
    returns whether a DTD was seen so far), then ``close``."""

    def __init__(self) -> None:
        self.found = False
        self._head = b""
        self._decoders: list[Callable[[bytes, bool], str]] | None = None
        self._raw_tail = b""
        self._text_tails: list[str] = []

    def feed(self, chunk: bytes) -> bool:
        if self.found:
            return True
        if self._decoders is None:
            self._head += chunk
            if len(self._head) < HEAD:
                return False
            chunk, self._head = self._head, b""
            self._start(chunk)
        self._scan(chunk, final=False)
        return self.found

    def close(self) -> bool:
        if not self.found:
            if self._decoders is None:
                chunk, self._head = self._head, b""
                self._start(chunk)
                self._scan(chunk, final=True)
            else:
                self._scan(b"", final=True)
        return self.found

    def _start(self, head: bytes) -> None:
        codecs_ = _readings(head)
        if codecs_ is None:
            self.found = True
            codecs_ = []
        self._decoders = [codecs.getincrementaldecoder(c)(errors="replace").decode
                          for c in codecs_]
        self._text_tails = [""] * len(self._decoders)

    def _scan(self, chunk: bytes, *, final: bool) -> None:
        window = self._raw_tail + chunk
        if _MARK_BYTES.search(window):
            self.found = True
            return
        self._raw_tail = window[-_TAIL:]
        for n, decode in enumerate(self._decoders or ()):
            text = self._text_tails[n] + decode(chunk, final)
            if _MARK_TEXT.search(text):
                self.found = True
                return
            self._text_tails[n] = text[-_TAIL:]


def declares_dtd(data: bytes) -> bool:
    """Whether the document's prolog (before its first element, past the XML
    declaration, processing instructions, comments and white space) holds a
    DOCTYPE, in whatever encoding the document is written. Markup quoted later
    (in CDATA, say) does not count."""
    codecs_ = _readings(data[:HEAD])
    if codecs_ is None:
        return True
    texts = [data.removeprefix(b"\xef\xbb\xbf").decode("latin-1")]
    texts += [data.decode(c, errors="replace") for c in codecs_]
    return any(_prolog_dtd(text) for text in texts)


def _prolog_dtd(text: str) -> bool:
    position = 0
    while True:
        match = _PROLOG_SKIP.match(text, position)
        if not match or match.end() == position:
            break
        position = match.end()
    return text.startswith("<!DOCTYPE", position)


def _readings(head: bytes) -> list[str] | None:
    """Codecs the document must also be read in, beyond its raw bytes (which
    serve every ASCII-compatible encoding); None for a declared encoding Python
    does not know."""
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                       (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            return [codec]
    first = head[:4]
    if len(first) == 4 and first[:3] == b"\x00\x00\x00":
        return ["utf-32-be"]
    if len(first) == 4 and first[1:] == b"\x00\x00\x00":
        return ["utf-32-le"]
    if len(first) >= 2 and first[0] == 0 and first[1] != 0:
        return ["utf-16-be"]
    if len(first) >= 2 and first[0] != 0 and first[1] == 0:
        return ["utf-16-le"]
    if first == b"\x4c\x6f\xa7\x94":  # "<?xm" in EBCDIC; its variants agree on "<!" and letters
        return ["cp037"]
    declared = _DECLARED.match(head.removeprefix(b"\xef\xbb\xbf"))
    if not declared:
        return []
    name = declared.group(1).decode("ascii").lower()
    try:
        codec = codecs.lookup(_ALIASES.get(name, name)).name
    except LookupError:
        return None
    if codec in ("utf-16", "utf-32"):  # named, but no byte order mark: either order
        return [f"{codec}-le", f"{codec}-be"]
    # ASCII-compatible means every ASCII byte reads as itself; UTF-7's "+" does not.
    if _ASCII.decode(codec, errors="replace") == _ASCII.decode("ascii"):
        return []
    return [codec]
