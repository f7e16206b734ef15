"""The language codes Whisper knows, and the one check every importer runs on them.

Whisper (the multilingual v1/v2 checkpoints, base included) has 99 language tokens; the
order below is the order of those tokens in its vocabulary.  A supervision whose
`language` is not one of these cannot be decoded with `language=` forced, so importers
stop on it early with a message naming the manifest instead of failing in stage 3.
"""
from __future__ import annotations

from udistil.errors import UdistilError

WHISPER_LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish", "vi": "vietnamese",
    "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian",
    "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak",
    "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian", "mk": "macedonian",
    "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian", "ne": "nepali",
    "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer",
    "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan",
    "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi", "gu": "gujarati",
    "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek", "fo": "faroese",
    "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese",
    "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala",
    "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese",
}

_CODE_BY_NAME = {name: code for code, name in WHISPER_LANGUAGES.items()}


def check_language(code, where: str) -> str:
    """Return `code` if Whisper knows it, else raise UdistilError naming `where`.

    `where` says which file (and line or supervision id) the code came from.  Common
    mistakes get a hint: a full name ("arabic" -> "ar") or a region suffix ("en-US" -> "en").
    """
    if isinstance(code, str) and code in WHISPER_LANGUAGES:
        return code
    hint = ""
    if isinstance(code, str):
        lowered = code.strip().lower()
        base = lowered.replace("_", "-").split("-")[0]
        if lowered in _CODE_BY_NAME:
            hint = f"; did you mean '{_CODE_BY_NAME[lowered]}'?"
        elif base in WHISPER_LANGUAGES:
            hint = f"; did you mean '{base}'?"
    raise UdistilError(
        f"{where}: language {code!r} is not one of Whisper's {len(WHISPER_LANGUAGES)} language "
        f"codes (ISO 639-1 such as 'ar', 'sw', 'en'){hint}")
