"""Free text -> Vasari labels: dates to years, artist strings to names and schools, and each
source's label words onto Vasari's vocabularies (``vasari.core.labels``).

Everything here is a pure function of strings, tested on the real strings of the shared
catalogs ("c. 1270", "1360/70", "ACHENBACH, Oswald", "After Jean Baptiste Joseph Pater
(French, 1695-1736)", "Italian; Tuscany", "religious_painting", "British", ...).
Unknown or unmappable input gives None, never an exception.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from vasari.core.labels import (
    SCHOOL_MAP,
    SCHOOLS,
    STYLE_MAP,
    STYLES,
    TIMEFRAMES,
    TYPE_MAP,
    TYPES,
    timeframe_of,
)

__all__ = [
    "ParsedArtist",
    "fold",
    "artist_key",
    "parse_year",
    "parse_year_range",
    "parse_date",
    "has_date",
    "parse_artist",
    "display_artist",
    "born_died",
    "wga_author_name",
    "slug_to_name",
    "slug_to_title",
    "fix_text",
    "map_type",
    "map_school",
    "map_style",
    "map_timeframe",
    "map_label",
    "timeframe_of",
]

# ----------------------------------------------------------------------------- text helpers


def fix_text(text: str) -> str:
    """Repair common damage in catalog text: percent-encoding, UTF-8 read as Latin-1
    ("CÃ©zanne" -> "Cézanne") or as cp437 ("Du╠êrer" -> "Dürer"), decomposed accents,
    stray whitespace."""
    if "%" in text and re.search(r"%[0-9A-Fa-f]{2}", text):
        from urllib.parse import unquote

        text = unquote(text)
    if re.search("[ÃÂÅÄ][\u0080-\u00bf]", text):
        try:
            text = text.encode("cp1252").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            try:
                text = text.encode("latin-1").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                pass
    if re.search("[\u2500-\u257f]", text):  # UTF-8 read as cp437 (Kaggle's "Albrecht_Du╠êrer")
        try:
            text = text.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    text = unicodedata.normalize("NFC", text)
    return re.sub(r"\s+", " ", text).strip()


@lru_cache(maxsize=1 << 16)
def fold(text: str) -> str:
    """Lower case, accents removed, "_" "-" "." "," and friends -> single spaces.

    The key under which source words are looked up in the label tables.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().replace("'", "").replace("\u2019", "")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return text.strip()


def artist_key(name: str) -> str:
    """The key two spellings of one artist share: "Édouard Manet", "edouard-manet",
    "Edouard Manet" -> "edouard manet"."""
    return fold(name)


# ----------------------------------------------------------------------------- dates

_DASH = re.compile("[\u2010-\u2015\u2212]")
_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}


def _roman(text: str) -> int | None:
    total, prev = 0, 0
    for ch in reversed(text.lower()):
        value = _ROMAN.get(ch)
        if value is None:
            return None
        total = total - value if value < prev else total + value
        prev = max(prev, value)
    return total or None


# part of a century or decade -> (start fraction, end fraction) of its span
_PARTS: list[tuple[str, tuple[float, float]]] = [
    (r"first half|1st half", (0.0, 0.5)),
    (r"second half|2nd half|latter half", (0.5, 1.0)),
    (r"first quarter|1st quarter", (0.0, 0.25)),
    (r"second quarter|2nd quarter", (0.25, 0.5)),
    (r"third quarter|3rd quarter", (0.5, 0.75)),
    (r"last quarter|fourth quarter|4th quarter", (0.75, 1.0)),
    (r"first third", (0.0, 0.34)),
    (r"last third", (0.66, 1.0)),
    (r"early|beginning of|start of", (0.0, 0.34)),
    (r"mid|middle of|middle", (0.34, 0.66)),
    (r"late|end of", (0.66, 1.0)),
]

_CENTURY = re.compile(
    r"(?P<n>\d{1,2})\s*(?:st|nd|rd|th)?\s*(?:c\b|c\.|cent\b|cent\.|century)|"
    r"\b(?P<r>[xvi]{1,6})(?:th)?\s*(?:c\b|c\.|cent\b|cent\.|century)"
)
_NUMBER_RANGE = re.compile(
    r"(?<![\d])(?P<a>\d{3,4})(?P<as>s?)"
    r"(?:\s*(?:-|/|to|or|and|until)\s*(?:c\.|ca\.|circa|about|around)?\s*(?P<b>\d{1,4})(?P<bs>s?)(?![\d]))?"
)
_UNKNOWN_DATE = re.compile(r"^(?:date unknown|unknown|undated|n\.?\s?d\.?|no date|s\.?\s?d\.?|-+|\?+)$")


def _part_of(prefix: str) -> tuple[float, float] | None:
    prefix = prefix.strip()
    for pattern, span in _PARTS:
        if re.search(r"(?:^|\s)(?:" + pattern + r")(?:\s+(?:of|the|in))*[\s-]*$", prefix):
            return span
    return None


def has_date(text: str | None) -> bool:
    """True when a date field holds a date at all ("Date unknown", "n.d.", "" do not)."""
    if not text:
        return False
    s = fix_text(str(text)).lower()
    return bool(s) and not _UNKNOWN_DATE.match(s)


@lru_cache(maxsize=1 << 15)
def parse_year_range(text: str | None, *, low: int = 100, high: int = 2100) -> tuple[int, int] | None:
    """A free-text date as an inclusive (first, last) year range, or None.

    "c. 1270" -> (1270, 1270); "1360/70" -> (1360, 1370); "1550-52" -> (1550, 1552);
    "1630s" -> (1630, 1639); "late 1630s" -> (1637, 1639); "17th century" -> (1601, 1700);
    "second half of XVII century" -> (1651, 1700); "before 1500" -> (1500, 1500);
    "1855, reworked 1857-59" -> (1855, 1855) (the first date given); "Date unknown" -> None.
    """
    if not text:
        return None
    s = _DASH.sub("-", fix_text(str(text))).lower().strip()
    s = s.replace("\u00a0", " ")
    if not s or _UNKNOWN_DATE.match(s):
        return None
    # two centuries: "16th-17th century"
    m = re.search(r"(\d{1,2})(?:st|nd|rd|th)\s*(?:-|to|or|/)\s*(\d{1,2})(?:st|nd|rd|th)\s*(?:c\b|c\.|cent|century)", s)
    if m and int(m.group(1)) < int(m.group(2)) <= 21 and not re.search(r"\d{3}", s[: m.start()]):
        return (int(m.group(1)) - 1) * 100 + 1, int(m.group(2)) * 100
    # centuries: "17th century", "XVII century", "second half of the 17th c."
    m = _CENTURY.search(s)
    first_number = _NUMBER_RANGE.search(s)
    if m and (first_number is None or m.start() < first_number.start()):
        n = int(m.group("n")) if m.group("n") else _roman(m.group("r") or "")
        if not n or not 1 <= n <= 21:
            return None
        start, end = (n - 1) * 100 + 1, n * 100
        span = _part_of(s[: m.start()])
        if span:
            a, b = span
            start, end = start + round(a * 100), (n - 1) * 100 + round(b * 100)
        return (start, end) if low <= start <= high else None
    if first_number is None:
        return None
    a = int(first_number.group("a"))
    decade_a = bool(first_number.group("as"))
    b_text = first_number.group("b")
    if b_text is None:
        start, end = a, a
        if decade_a:
            span = _part_of(s[: first_number.start()])
            start, end = a, a + 9
            if span:
                start, end = a + round(span[0] * 10), a + min(9, round(span[1] * 10))
    else:
        # "1550-52" completes the century: 1552; "1598/1604" stands alone
        if len(b_text) < len(str(a)):
            b = int(str(a)[: len(str(a)) - len(b_text)] + b_text)
        else:
            b = int(b_text)
        if first_number.group("bs"):
            b += 9
        if b < a or b - a > 200:  # "1580-1" style typos or unrelated numbers
            b = a + 9 if decade_a else a
        start, end = a, b
    if not (low <= start <= high):
        return None
    return start, end


def parse_year(text: str | None) -> int | None:
    """A free-text date as one year (the midpoint of a range, rounded down), or None.

    "c. 1270" -> 1270, "1360/70" -> 1365, "1550-52" -> 1551, "1630s" -> 1635,
    "before 1500" -> 1500, "1650-1655" -> 1652, "c. 1600-10" -> 1605, "17th century" -> 1650,
    "Date unknown" -> None.
    """
    span = parse_year_range(text)
    if span is None:
        return None
    return (span[0] + span[1] + 1) // 2


#: A date range wider than this many years gives a year but no timeframe ("17th century"
#: spans two 50-year bins, so its bin would be a guess).
MAX_TIMEFRAME_SPAN = 50


def parse_date(text: str | None) -> tuple[int | None, str | None]:
    """A free-text date as (year, timeframe): "1550-52" -> (1551, "1501-1550");
    "17th century" -> (1651, None) (too wide for one bin); "Date unknown" -> (None, None)."""
    span = parse_year_range(text)
    if span is None:
        return None, None
    year = (span[0] + span[1] + 1) // 2
    return year, timeframe_of(year) if span[1] - span[0] <= MAX_TIMEFRAME_SPAN else None


# ----------------------------------------------------------------------------- vocabularies


@lru_cache(maxsize=None)
def _folded(vocabulary: tuple[str, ...]) -> dict[str, str]:
    return {fold(v): v for v in vocabulary}


def _lookup(raw: str | None, vocabulary: tuple[str, ...], table: dict[str, str]) -> str | None:
    if raw is None:
        return None
    key = fold(str(raw))
    if not key:
        return None
    return _folded(vocabulary).get(key) or table.get(key)


def map_type(raw: str | None) -> str | None:
    """A source's subject type ("religious_painting", "still_life", "Naturmort", "cityscape")
    -> Vasari type ("religious", "still-life", "landscape"), or None when unmapped."""
    return _lookup(raw, TYPES, TYPE_MAP)


@lru_cache(maxsize=1 << 14)
def map_school(raw: str | None) -> str | None:
    """A school or nationality ("British", "Dutch", "Bolognese", "Germany", "Italian; Tuscany")
    -> Vasari school ("English", "Dutch", "Italian", "German", "Italian"), or None.

    Only the first ";"-part counts ("Italian; Tuscany"); "A or B" is ambiguous -> None."""
    if raw is None:
        return None
    text = fix_text(str(raw)).split(";")[0].strip()
    if re.search(r"\bor\b", text):
        return None
    text = re.sub(r"^(?:school of|the)\s+", "", text, flags=re.I)
    text = re.sub(r"\s+school$", "", text, flags=re.I)
    return _lookup(text, SCHOOLS, SCHOOL_MAP)


def map_style(raw: str | None) -> str | None:
    """A style / movement ("Baroque", "Post_Impressionism", "Mannerism_Late_Renaissance")
    -> Vasari style, or None (also for "Realism,Impressionism": several styles)."""
    if raw is None:
        return None
    parts = [p for p in re.split(r"[,;/]", str(raw)) if p.strip()]
    if len(parts) != 1:
        mapped = {_lookup(p, STYLES, STYLE_MAP) for p in parts}
        return None if len(mapped) != 1 else mapped.pop()
    return _lookup(parts[0], STYLES, STYLE_MAP)


def map_timeframe(raw: str | None) -> str | None:
    """ "1601-1650" (or "1601 - 1650") -> "1601-1650" when it is one of Vasari's bins, else None."""
    if raw is None:
        return None
    text = re.sub(r"\s+", "", _DASH.sub("-", str(raw)))
    return text if text in TIMEFRAMES else None


def map_label(task: str, raw: str | None) -> str | None:
    """Map a raw label of any task onto Vasari's vocabulary (artist: display name)."""
    if task == "type":
        return map_type(raw)
    if task == "school":
        return map_school(raw)
    if task == "style":
        return map_style(raw)
    if task == "timeframe":
        return map_timeframe(raw)
    if task == "artist":
        return parse_artist(raw).name if raw else None
    raise KeyError(f"unknown task {task!r}")


# ----------------------------------------------------------------------------- artists

#: Famous artists' other spellings (folded, see ``fold``) -> the display name used as label.
ARTIST_ALIASES: dict[str, str] = {
    "rembrandt harmenszoon van rijn": "Rembrandt",
    "rembrandt van rijn": "Rembrandt",
    "rembrandt harmensz van rijn": "Rembrandt",
    "michelangelo buonarroti": "Michelangelo",
    "raffaello sanzio": "Raphael",
    "raffaello": "Raphael",
    "tiziano vecellio": "Titian",
    "tiziano": "Titian",
    "michelangelo merisi da caravaggio": "Caravaggio",
    "greco el": "El Greco",
    "domenikos theotokopoulos": "El Greco",
    "francisco de goya y lucientes": "Francisco Goya",
    "francisco de goya": "Francisco Goya",
    "diego rodriguez de silva y velazquez": "Diego Velázquez",
    "diego velazquez": "Diego Velázquez",
    "joseph mallord william turner": "J. M. W. Turner",
    "william turner": "J. M. W. Turner",
    "j m w turner": "J. M. W. Turner",
    "jmw turner": "J. M. W. Turner",
    "jean antoine watteau": "Antoine Watteau",
    "antoine watteau": "Antoine Watteau",
    "anthony van dyck": "Anthony van Dyck",
    "sir anthony van dyck": "Anthony van Dyck",
    "antoon van dyck": "Anthony van Dyck",
    "jacob isaackszon van ruisdael": "Jacob van Ruisdael",
    "jacob isaakszoon van ruisdael": "Jacob van Ruisdael",
    "jacob van ruisdael": "Jacob van Ruisdael",
    "gerard terborch": "Gerard ter Borch",
    "gerard ter borch": "Gerard ter Borch",
    "johannes vermeer": "Johannes Vermeer",
    "jan vermeer": "Johannes Vermeer",
    "vermeer van delft jan": "Johannes Vermeer",
    "giotto di bondone": "Giotto",
    "albrecht durer": "Albrecht Dürer",
    "pieter bruegel": "Pieter Bruegel the Elder",
    "pieter bruegel the elder": "Pieter Bruegel the Elder",
    "pierre auguste renoir": "Pierre-Auguste Renoir",
    "edouard manet": "Édouard Manet",
    "paul cezanne": "Paul Cézanne",
    "eugene delacroix": "Eugène Delacroix",
    "eugene boudin": "Eugène Boudin",
    "jean honore fragonard": "Jean-Honoré Fragonard",
    "jean baptiste simeon chardin": "Jean-Baptiste-Siméon Chardin",
    "jean baptiste camille corot": "Camille Corot",
    "camille corot": "Camille Corot",
    "bartolome esteban murillo": "Bartolomé Esteban Murillo",
    "francisco de zurbaran": "Francisco de Zurbarán",
    "jusepe de ribera": "Jusepe de Ribera",
    "giovanni antonio canal": "Canaletto",
    "claude gellee": "Claude Lorrain",
    "claude lorrain": "Claude Lorrain",
    "vasiliy kandinskiy": "Wassily Kandinsky",
    "louise elisabeth vigee le brun": "Élisabeth Vigée Le Brun",
    "elisabeth vigee le brun": "Élisabeth Vigée Le Brun",
    "elisabeth vigee lebrun": "Élisabeth Vigée Le Brun",
    "maurice quentin de la tour": "Maurice Quentin de La Tour",
    "joseph wright": "Joseph Wright of Derby",
    "joseph wright of derby": "Joseph Wright of Derby",
    "hans holbein": "Hans Holbein the Younger",
    "lucas cranach": "Lucas Cranach the Elder",
    "georges pierre seurat": "Georges Seurat",
    "edgar hilaire germain degas": "Edgar Degas",
    "oscar claude monet": "Claude Monet",
    "anders leonard zorn": "Anders Zorn",
    "felix edouard vallotton": "Félix Vallotton",
    "felix vallotton": "Félix Vallotton",
    "peder severin kroyer": "Peder Severin Krøyer",
    "james abbot mcneill whistler": "James McNeill Whistler",
    "james mcneill whistler": "James McNeill Whistler",
}

# Prefixes that make a work *not* the named artist's own (name -> None, school kept).
_ATTRIBUTION_PREFIX = re.compile(
    r"^(?P<what>after|copy after|copy of|copy by|workshop of|studio of|atelier of|follower of|followers of|"
    r"circle of|school of|attributed to|attr\.|attributed|manner of|style of|imitator of|pupil of|"
    r"assistant of|entourage of|and workshop|possibly|probably|formerly attributed to|near)\b[\s:]*",
    re.I,
)
# Suffixes with the same meaning ("Vergós Workshop", "Lippi-Pesellino Imitator", "Rubens and workshop").
_ATTRIBUTION_SUFFIX = re.compile(
    r"(?:,?\s+(?:and|&|with)\s+(?:his\s+)?(?:workshop|studio|assistants?|school))$|"
    r"\s+(?P<what>workshop|studio|imitator|follower|circle|school)$",
    re.I,
)
_ANONYMOUS = re.compile(
    r"^(?:unknown|anonymous|anon\.?|artist unknown|unknown artist|unidentified artist|"
    r"unknown (?:master|painter|artist|icon painter|cabinetmaker|sculptor|goldsmith|illuminator|"
    r"miniaturist|engraver|architect|draughtsman|weaver|stonemason|glass painter|craftsman|potter)|"
    r"anonymous (?:master|painter|artist)|architect|master|painter|not detected)$",
    re.I,
)
_PARTICLES = {
    "van",
    "von",
    "der",
    "den",
    "de",
    "del",
    "della",
    "delle",
    "dei",
    "degli",
    "di",
    "da",
    "du",
    "des",
    "la",
    "le",
    "ter",
    "ten",
    "tot",
    "y",
    "zu",
    "e",
    "het",
    "dello",
    "dal",
    "dalla",
    "d",
    "the",
    "of",
    "in",
    "and",
    "called",
    "il",
    "lo",
}
_SUFFIXES = re.compile(
    r"^(?:the elder|the younger|the old|the young|elder|younger|jr\.?|sr\.?|junior|senior|"
    r"[ivx]{1,4}|the [a-z]+)$",
    re.I,
)


@dataclass(frozen=True)
class ParsedArtist:
    """What an artist string says.

    ``name`` is the display name when the work is the artist's own ("Oswald Achenbach"),
    None for attributions ("After ...", "Workshop of ...") and anonymous or unknown hands.
    ``school`` is Vasari's school from the nationality ("British" -> "English"), even for
    attributions. ``attribution`` is the qualifier ("after", "workshop of", ...),
    ``attributed_to`` the named artist it refers to.
    """

    name: str | None = None
    nationality: str | None = None
    school: str | None = None
    attribution: str | None = None
    attributed_to: str | None = None
    anonymous: bool = False


def _cap(word: str, first: bool) -> str:
    """Title-case one word of an upper-case WGA name ("PEÑA" -> "Peña", "D'ANTONIO" -> "d'Antonio")."""
    if not word:
        return word
    if "-" in word and len(word) > 1:
        return "-".join(_cap(w, first and i == 0) for i, w in enumerate(word.split("-")))
    m = re.match(r"^([A-Za-z]{1,4}['\u2019])(.+)$", word)
    if m and fold(m.group(1)) in {"d", "dell", "de", "l", "dall", "all", "sant", "o"}:
        head, tail = m.group(1), m.group(2)
        if fold(head) == "o":  # O'Neil
            return "O'" + _cap(tail, False)
        head = head.lower() if not first else head[0].upper() + head[1:].lower()
        return head + _cap(tail, False)
    if word.endswith(("'", "\u2019")) and fold(word[:-1]) in {"d", "dell", "de", "l"}:
        return word.lower() if not first else word[0].upper() + word[1:].lower()
    low = word.lower()
    if not first and low in _PARTICLES:
        return low
    if re.fullmatch(r"[ivx]{1,4}", low) and not first:
        return word.upper()
    if "." in word and len(word) <= 3:  # initials "J." "M.S."
        return word.upper()
    return word[0].upper() + word[1:].lower()


def _is_upper(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters)


def _join_name(parts: list[str]) -> str:
    text = " ".join(p for p in parts if p)
    text = re.sub(
        r"\b([dD]|[dD]ell|[lL]|[aA]ll|[dD]all)(['\u2019])\s+", r"\1\2", text
    )  # "dell' Abbate" -> "dell'Abbate"
    text = re.sub(r"\.(?=[A-Za-z]{2})", ". ", text)  # "Jansz.van" -> "Jansz. van"
    return re.sub(r"\s+", " ", text).strip(" ,")


def wga_author_name(author: str) -> str:
    """A WGA AUTHOR in display order: "ACHENBACH, Oswald" -> "Oswald Achenbach",
    "GOGH, Vincent van" -> "Vincent van Gogh", "OOST, Jacob van, the Elder" ->
    "Jacob van Oost the Elder", "ABBATE, Niccolò dell'" -> "Niccolò dell'Abbate",
    "MASOLINO da Panicale" -> "Masolino da Panicale", "ANDREA DEL SARTO" -> "Andrea del Sarto"."""
    text = fix_text(author)
    text = re.sub(r"^([A-ZÀ-Þ' -]{2,})\.\s+(?=[A-ZÀ-Þ][a-zà-ÿ])", r"\1, ", text)  # "ANQUETIN. Louis"
    parts = [p.strip() for p in text.split(",")]
    surname_part, rest = parts[0], [p for p in parts[1:] if p]
    # the upper-case head of the surname part ("REMBRANDT Harmenszoon van Rijn")
    words = surname_part.split()
    upper_words: list[str] = []
    for w in words:
        if _is_upper(w):
            upper_words.append(w)
        else:
            break
    tail_words = words[len(upper_words) :]
    surname = " ".join(_cap(w, i == 0) for i, w in enumerate(upper_words)) if upper_words else surname_part
    tail = " ".join(tail_words)
    if not rest:
        return _join_name([surname, tail])
    given, suffixes = [], []
    for piece in rest:
        if _SUFFIXES.match(piece) and given:
            suffixes.append(piece)
            continue
        m = re.match(r"^(.*?)\s+(the elder|the younger|the old|the young|jr\.?|sr\.?|[IVX]{1,4})$", piece, re.I)
        if m and m.group(1):
            given.append(m.group(1))
            suffixes.append(m.group(2))
        else:
            given.append(piece)
    given_text = " ".join(given)
    # the particles trailing the given names belong before the surname: "Vincent van" + "Gogh"
    return _join_name([given_text, surname, tail, *suffixes])


def slug_to_name(slug: str) -> str:
    """A WikiArt artist slug as a display name: "rembrandt" -> "Rembrandt",
    "claude-monet" -> "Claude Monet", "t.-c.-steele" -> "T. C. Steele",
    "david-teniers-the-younger" -> "David Teniers the Younger" (see also ``display_artist``)."""
    text = fix_text(slug).replace("_", "-")
    words = [w for w in re.split(r"[-\s]+", text) if w]
    return _join_name([_cap(w, i == 0) for i, w in enumerate(words)])


def slug_to_title(slug: str) -> str:
    """A WikiArt title slug as a title: "father-s-of-unpleasant-duties" -> "Father's of unpleasant duties"."""
    text = fix_text(slug)
    text = re.sub(r"(?<=[a-z])-s(?=-|$)", "'s", text)
    text = re.sub(r"[-_]+", " ", text).strip()
    return text[:1].upper() + text[1:]


_PATRONYMIC = re.compile(r"(?:ovich|evich|yich|ovna|evna|ichna)$")


_BORN = re.compile(r"\bb\.\s*(?:ca?\.\s*|about\s+)?(\d{4})")
_DIED = re.compile(r"\bd\.\s*(?:ca?\.\s*|about\s+|after\s+|before\s+)?(\d{4})")


def born_died(text: str | None) -> tuple[int | None, int | None]:
    """Birth and death years of a Web Gallery of Art ``BORN-DIED`` cell ("(b. 1606, Leiden,
    d. 1669, Amsterdam)"; "c." / "ca." / "after" years taken as stated); None for a part it
    does not state ("(active 1620-1650 in Haarlem)" gives neither)."""
    born = _BORN.search(text or "")
    died = _DIED.search(text or "")
    return (int(born.group(1)) if born else None, int(died.group(1)) if died else None)


def display_artist(name: str | None) -> str | None:
    """One display name per artist across sources: aliases for famous names ("REMBRANDT
    Harmenszoon van Rijn" / "Rembrandt van Rijn" -> "Rembrandt"), honorifics dropped
    ("Sir Joshua Reynolds" -> "Joshua Reynolds"), whitespace normalised."""
    if not name:
        return None
    text = fix_text(name)
    text = re.sub(r"^(?:sir|dame|lord|baron|count)\s+", "", text, flags=re.I)
    if not text:
        return None
    alias = ARTIST_ALIASES.get(fold(text))
    if alias:
        return alias
    # Russian patronymics: WGA "Ivan Konstantinovich Aivazovsky", WikiArt "ivan-aivazovsky"
    words = text.split()
    if len(words) >= 3:
        kept = [w for i, w in enumerate(words) if not (0 < i < len(words) - 1 and _PATRONYMIC.search(w))]
        text = " ".join(kept)
    return ARTIST_ALIASES.get(fold(text)) or text


def _split_parens(text: str) -> tuple[str, list[str]]:
    """ "Allegretto Nuzi (Italian, 1346–1373)" -> ("Allegretto Nuzi", ["Italian, 1346–1373"])."""
    groups = re.findall(r"\(([^()]*)\)", text)
    outside = re.sub(r"\([^()]*\)", " ", text)
    return re.sub(r"\s+", " ", outside).strip(" ,;"), groups


_ACTIVE = re.compile(
    r"^(?:active|documented|born|died|probably|possibly|active in|working in|b\.|d\.)\b\s*(?:in\s+)?", re.I
)


def _nationality_in(text: str) -> tuple[str | None, str | None]:
    """The nationality phrase in a parenthesis or place string and its school.

    "Italian, 1346–1373" -> ("Italian", "Italian"); "Baccio della Porta; Italian, 1472-1517" ->
    ("Italian", ...); "active Spain, c. 1485–1516" -> ("Spain", "Spanish");
    "Netherlandish or German; possibly Rhenish" -> ("Netherlandish or German", None)."""
    segments = [s.strip() for s in re.split(r"[;]", text) if s.strip()]
    # the segment holding the nationality is the one before dates, usually the last ";"-part
    for seg in reversed(segments):
        for piece in [p.strip() for p in seg.split(",") if p.strip()]:
            cleaned = _ACTIVE.sub("", piece).strip()
            if not cleaned or re.search(r"\d", cleaned):
                continue
            school = map_school(cleaned)
            if school:
                return cleaned, school
    # no mappable piece: report the first non-date piece as the (unmapped) nationality
    for seg in segments:
        first = _ACTIVE.sub("", seg.split(",")[0]).strip()
        if first and not re.search(r"\d", first) and _looks_like_place(first):
            return first, None
    return None, None


#: Nationalities outside Vasari's schools (recognised as places, left unmapped).
OTHER_NATIONALITIES = frozenset(
    {
        "byzantine",
        "coptic",
        "mexican",
        "jewish",
        "belarusian",
        "ukrainian",
        "armenian",
        "georgian",
        "persian",
        "ottoman",
        "turkish",
        "japanese",
        "chinese",
        "indian",
        "peruvian",
        "cuzco",
        "bolivian",
        "brazilian",
        "canadian",
        "australian",
        "icelandic",
        "romanian",
        "bulgarian",
        "serbian",
        "croatian",
        "slovak",
        "slovenian",
        "lithuanian",
        "latvian",
        "estonian",
        "cretan",
        "egyptian",
        "syrian",
    }
)


def _looks_like_place(text: str) -> bool:
    """True for nationality strings ("Dutch", "Bolognese", "Netherlandish or German",
    "Byzantine"), False for names ("Titian", "Jan Steen")."""
    parts = [p for p in re.split(r"\s+(?:or|and)\s+|/", text) if p.strip()]
    return bool(parts) and all(map_school(p) or fold(p) in OTHER_NATIONALITIES for p in parts)


@lru_cache(maxsize=1 << 15)
def parse_artist(raw: str | None, *, wga: bool | None = None) -> ParsedArtist:
    """Parse an artist string from any source.

    - AIC style: "Allegretto Nuzi (Italian, 1346–1373)" -> name "Allegretto Nuzi", school "Italian";
      "After Jean Baptiste Joseph Pater (French, 1695-1736)" -> name None, school "French",
      attribution "after"; "Italian; Tuscany" -> name None, school "Italian".
    - WGA style (``wga=True`` or an upper-case surname first): "ACHENBACH, Oswald" ->
      "Oswald Achenbach"; "UNKNOWN MASTER, Portuguese" -> name None, school "Portuguese";
      "ARCHITECT, French" -> name None, school "French"; "MASTER of the Aix Annunciation" ->
      "Master of the Aix Annunciation" (a conventional name for one anonymous hand).
    - Several artists or an "or" ("X\\nor Workshop of X") -> name None (not one hand).
    """
    if raw is None:
        return ParsedArtist()
    text = str(raw)
    lines = [ln.strip() for ln in text.replace("\r", "\n").split("\n") if ln.strip()]
    if not lines:
        return ParsedArtist()
    first = parse_artist(lines[0], wga=wga) if len(lines) > 1 else None
    if first is not None:
        # several hands ("Workshop of A\nB", "A\nor Workshop of A"): keep the school only
        return ParsedArtist(
            name=None,
            nationality=first.nationality,
            school=first.school,
            attribution="several" if first.attribution is None else first.attribution,
            attributed_to=first.name or first.attributed_to,
        )
    text = fix_text(lines[0])
    if not text:
        return ParsedArtist()
    name_part, groups = _split_parens(text)
    nationality, school = None, None
    for group in reversed(groups):
        nationality, school = _nationality_in(group)
        if nationality:
            break
    # a place, not a person: "Italian; Tuscany", "Dutch", "Netherlandish or German; possibly Rhenish"
    head = name_part.split(";")[0].strip()
    if not wga and not groups and head and not _is_upper(head.split(",")[0].split()[0]) and _looks_like_place(head):
        return ParsedArtist(name=None, nationality=head, school=map_school(head), anonymous=True)
    if wga is None:
        wga = _is_upper(name_part.split(",")[0].split()[0]) if name_part.split() else False
    # attribution qualifiers
    attribution = None
    m = _ATTRIBUTION_PREFIX.match(name_part)
    if m:
        attribution = m.group("what").lower()
        name_part = name_part[m.end() :].strip()
    else:
        m = _ATTRIBUTION_SUFFIX.search(name_part)
        if m:
            attribution = (m.group("what") or "and workshop").lower()
            name_part = name_part[: m.start()].strip()
    if "?" in name_part:
        attribution = attribution or "attributed"
        name_part = name_part.replace("?", "").strip()
    if wga:
        pieces = [p.strip() for p in name_part.split(",")]
        head_fold = fold(pieces[0])
        if _ANONYMOUS.match(head_fold) or re.match(r"^unknown\b|^anonymous\b", head_fold):
            nat = pieces[1] if len(pieces) > 1 else None
            return ParsedArtist(
                name=None,
                nationality=nat or nationality,
                school=map_school(nat) if nat else school,
                anonymous=True,
                attribution=attribution,
            )
        name = wga_author_name(name_part)
    else:
        if _ANONYMOUS.match(fold(name_part)) or re.match(r"^(?:unknown|anonymous)\b", fold(name_part)):
            return ParsedArtist(
                name=None, nationality=nationality, school=school, anonymous=True, attribution=attribution
            )
        # "Joos de Momper, II", "Johann Liss, the younger" -> suffix without comma
        name = _join_name([p.strip() for p in name_part.split(",")])
        name = re.sub(r"\bthe (elder|younger)\b", lambda mm: "the " + mm.group(1).capitalize(), name, flags=re.I)
        if name and _is_upper(name) and len(name) > 3:
            name = " ".join(_cap(w, i == 0) for i, w in enumerate(name.split()))
    name = display_artist(name)
    if attribution:
        return ParsedArtist(
            name=None, nationality=nationality, school=school, attribution=attribution, attributed_to=name
        )
    return ParsedArtist(name=name, nationality=nationality, school=school)
