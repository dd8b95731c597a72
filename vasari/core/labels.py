"""Vasari's label vocabularies: the tasks a model answers and the values each may take.

Every catalog reader maps its source's own words onto these vocabularies (see
``vasari.catalog.normalize``), so that sources can be merged and one model trained on all of them.
"""

from __future__ import annotations

#: Classification tasks, in the order reports and the API show them.
TASKS: tuple[str, ...] = ("type", "school", "timeframe", "style", "artist")

#: Vasari's period bins: 50 years each, 1401-1900, as in the Web Gallery of Art.
FIRST_YEAR, LAST_YEAR, BIN_YEARS = 1401, 1900, 50
TIMEFRAMES: tuple[str, ...] = tuple(
    f"{start}-{start + BIN_YEARS - 1}" for start in range(FIRST_YEAR, LAST_YEAR, BIN_YEARS)
)


def timeframe_of(year: int | None) -> str | None:
    """The 50-year bin ("1601-1650") a year falls in, or None outside 1401-1900."""
    if year is None or not FIRST_YEAR <= year <= LAST_YEAR:
        return None
    start = FIRST_YEAR + (year - FIRST_YEAR) // BIN_YEARS * BIN_YEARS
    return f"{start}-{start + BIN_YEARS - 1}"


# --------------------------------------------------------------------------------------
# Vocabularies. Every label a reader puts on an ``Artwork`` is one of these (or None).
# The tables below map each source's own words onto them; docs/labels.md documents them.
# --------------------------------------------------------------------------------------

#: Subject types, as the Web Gallery of Art names them. WGA's "other" and "study" are not
#: classes (they are catch-alls), so they stay unmapped.
TYPES: tuple[str, ...] = (
    "religious",
    "mythological",
    "historical",
    "portrait",
    "landscape",
    "genre",
    "still-life",
    "interior",
)

#: Schools, as the Web Gallery of Art names them (WGA's "Other" is not a class).
SCHOOLS: tuple[str, ...] = (
    "Italian",
    "French",
    "Dutch",
    "Flemish",
    "Netherlandish",
    "German",
    "Spanish",
    "English",
    "Scottish",
    "Irish",
    "American",
    "Austrian",
    "Hungarian",
    "Swiss",
    "Belgian",
    "Russian",
    "Swedish",
    "Danish",
    "Norwegian",
    "Finnish",
    "Polish",
    "Catalan",
    "Bohemian",
    "Portuguese",
    "Greek",
)

#: Art movements of 1401-1900 (WikiArt's style names, cleaned).
STYLES: tuple[str, ...] = (
    "Early Renaissance",
    "Northern Renaissance",
    "High Renaissance",
    "Mannerism",
    "Baroque",
    "Rococo",
    "Neoclassicism",
    "Romanticism",
    "Academicism",
    "Realism",
    "Impressionism",
    "Post-Impressionism",
    "Pointillism",
    "Symbolism",
    "Art Nouveau",
)

#: Vocabulary per task; ``artist`` is open (display names such as "Rembrandt", "Claude Monet").
VOCABULARIES: dict[str, tuple[str, ...] | None] = {
    "type": TYPES,
    "school": SCHOOLS,
    "timeframe": TIMEFRAMES,
    "style": STYLES,
    "artist": None,
}

# Source word (folded: lower case, accents removed, "_"/"-" -> " ") -> Vasari label.
# Words that are already a vocabulary value (in any case) map to themselves implicitly.
TYPE_MAP: dict[str, str] = {
    # WikiArt genres (ArtGAN benchmark names)
    "religious painting": "religious",
    "mythological painting": "mythological",
    "history painting": "historical",
    "battle painting": "historical",
    "genre painting": "genre",
    "still life": "still-life",
    "flower painting": "still-life",
    "vanitas": "still-life",
    "cityscape": "landscape",
    "marina": "landscape",
    "seascape": "landscape",
    "veduta": "landscape",
    "capriccio": "landscape",
    "landscape painting": "landscape",
    "self portrait": "portrait",
    "portrait painting": "portrait",
    "interior view": "interior",
    # other languages (Louvre / museum folder names)
    "naturmort": "still-life",
    "nature morte": "still-life",
    "natura morta": "still-life",
    "stilleven": "still-life",
    "stillleben": "still-life",
    "bodegon": "still-life",
    "paysage": "landscape",
    "portret": "portrait",
    "scene de genre": "genre",
    "genre scene": "genre",
    # plural / variant spellings
    "portraits": "portrait",
    "landscapes": "landscape",
    "still lifes": "still-life",
    "religious art": "religious",
    "religion": "religious",
    "mythology": "mythological",
    "history": "historical",
}
# Deliberately unmapped (counted in ParseReport.unmapped): WGA "other", "study";
# WikiArt "sketch_and_study", "nude_painting", "illustration", "allegorical_painting",
# "animal_painting", "abstract_painting", "design", "wildlife_painting", ...

SCHOOL_MAP: dict[str, str] = {
    # nationalities / countries -> WGA school names
    "british": "English",
    "england": "English",
    "welsh": "English",
    "great britain": "English",
    "scotland": "Scottish",
    "ireland": "Irish",
    "italy": "Italian",
    "france": "French",
    "germany": "German",
    "spain": "Spanish",
    "holland": "Dutch",
    "the netherlands": "Dutch",
    "netherlands": "Dutch",
    "flanders": "Flemish",
    "belgium": "Belgian",
    "austria": "Austrian",
    "hungary": "Hungarian",
    "switzerland": "Swiss",
    "russia": "Russian",
    "sweden": "Swedish",
    "denmark": "Danish",
    "norway": "Norwegian",
    "finland": "Finnish",
    "poland": "Polish",
    "bohemia": "Bohemian",
    "czech": "Bohemian",
    "portugal": "Portuguese",
    "greece": "Greek",
    "catalonia": "Catalan",
    "united states": "American",
    "usa": "American",
    # regional schools and adjectives (AIC writes "Bolognese", "Northern Spanish", ...)
    "venetian": "Italian",
    "florentine": "Italian",
    "sienese": "Italian",
    "bolognese": "Italian",
    "tuscan": "Italian",
    "umbrian": "Italian",
    "lombard": "Italian",
    "roman": "Italian",
    "neapolitan": "Italian",
    "genoese": "Italian",
    "ferrarese": "Italian",
    "milanese": "Italian",
    "emilian": "Italian",
    "piedmontese": "Italian",
    "sicilian": "Italian",
    "central italian": "Italian",
    "northern italian": "Italian",
    "north italian": "Italian",
    "southern italian": "Italian",
    "south italian": "Italian",
    "northern spanish": "Spanish",
    "southern spanish": "Spanish",
    "castilian": "Spanish",
    "aragonese": "Spanish",
    "andalusian": "Spanish",
    "valencian": "Spanish",
    "sevillian": "Spanish",
    "south german": "German",
    "southern german": "German",
    "north german": "German",
    "northern german": "German",
    "rhenish": "German",
    "swabian": "German",
    "franconian": "German",
    "bavarian": "German",
    "westphalian": "German",
    "saxon": "German",
    "prussian": "German",
    "cologne": "German",
    "upper rhenish": "German",
    "middle rhenish": "German",
    "north netherlandish": "Netherlandish",
    "northern netherlandish": "Netherlandish",
    "south netherlandish": "Netherlandish",
    "southern netherlandish": "Netherlandish",
    "early netherlandish": "Netherlandish",
    "anglo american": "American",
    "american colonial": "American",
}
# Deliberately unmapped: WGA "Other"; "Byzantine", "Coptic" (WGA architects); Kaggle
# "Mexican", "Jewish", "Belarusian", ...; ambiguous strings such as "Italian or Spanish".

STYLE_MAP: dict[str, str] = {
    # WikiArt benchmark folder names
    "mannerism late renaissance": "Mannerism",
    "late renaissance": "Mannerism",
    "post impressionism": "Post-Impressionism",
    "art nouveau modern": "Art Nouveau",
    "art nouveau": "Art Nouveau",
    "neo classicism": "Neoclassicism",
    "neoclassical": "Neoclassicism",
    "academic art": "Academicism",
    "academism": "Academicism",
    "neo impressionism": "Pointillism",
    "divisionism": "Pointillism",
    "romantic": "Romanticism",
    "baroque art": "Baroque",
    "rococo art": "Rococo",
    "impressionist": "Impressionism",
    "realist": "Realism",
}
# Deliberately unmapped: Kaggle "Modernism", "Proto Renaissance", "Byzantine Art", "Cubism",
# "Surrealism", ... (outside 1401-1900); multi-valued genres ("Realism,Impressionism").
