"""Normalisers used for WER/CER: the paper's Arabic rules and the basic multilingual one."""
import pytest

from udistil.evaluate.normalize import normalize_arabic, normalize_basic, normalizer_for


# --- Arabic: one test per rule ---------------------------------------------------------

@pytest.mark.parametrize(
    "variant", ["\u0625", "\u0623", "\u0671", "\u0622", "\u0627"],  # إ أ ٱ آ ا
)
def test_alef_variants_fold_to_bare_alef(variant):
    assert normalize_arabic(f"{variant}حمد") == "احمد"


def test_diacritics_are_deleted_without_splitting_words():
    # fatha, damma, kasra, tanween (three kinds), shadda, sukun, superscript alef
    assert normalize_arabic("كَتَبَ") == "كتب"
    assert normalize_arabic("كِتَابٌ كِتَابًا كِتَابٍ") == "كتاب كتابا كتاب"
    assert normalize_arabic("مُدَرِّسْ") == "مدرس"
    assert normalize_arabic("هٰذا") == "هذا"


def test_tatweel_is_deleted():
    assert normalize_arabic("جميــــــل") == "جميل"


def test_arabic_indic_and_persian_digits_become_ascii():
    assert normalize_arabic("عام ٢٠٢٤") == "عام 2024"
    assert normalize_arabic("۰۱۲۳۴۵۶۷۸۹") == "0123456789"
    assert normalize_arabic("0123456789") == "0123456789"


def test_only_arabic_letters_digits_percent_at_survive():
    # Latin words, Arabic punctuation and symbols disappear; % and @ stay.
    assert normalize_arabic("قال hello World: «نعم»؟") == "قال نعم"
    assert normalize_arabic("خصم 50% على @متجر") == "خصم 50% على @متجر"
    assert normalize_arabic("نسبة ٥٠٪") == "نسبة 50%"


def test_punctuation_between_words_keeps_them_apart():
    assert normalize_arabic("نعم،لا") == "نعم لا"


def test_whitespace_is_collapsed():
    assert normalize_arabic("  مرحبا \t\n  بكم  ") == "مرحبا بكم"


def test_real_sentence_with_diacritics_tatweel_and_punctuation():
    text = "إِنَّ الْعِلْمَ نُــــورٌ، وَالْجَهْلَ ظَلَامٌ! (قَالَهُ أَحْمَدُ عَامَ ١٩٩٩)"
    assert normalize_arabic(text) == "ان العلم نور والجهل ظلام قاله احمد عام 1999"


def test_presentation_forms_and_persian_keyboard_letters():
    assert normalize_arabic("\uFEFB") == "لا"  # lam-alef ligature
    assert normalize_arabic("کتاب یوم") == "كتاب يوم"


def test_letters_the_paper_does_not_fold_are_left_alone():
    # taa marbuta, alef maqsura and hamza seats are distinct letters in the paper's scoring
    assert normalize_arabic("مدرسة على سؤال") == "مدرسة على سؤال"


def test_empty_and_none():
    assert normalize_arabic("") == ""
    assert normalize_arabic(None) == ""
    assert normalize_arabic("hello!") == ""


# --- basic ---------------------------------------------------------------------------

def test_basic_lowercases_and_removes_punctuation():
    assert normalize_basic("Hello, World!  How are YOU?") == "hello world how are you"


def test_basic_unicode_punctuation_and_symbols():
    assert normalize_basic("«Habari» — rafiki… “ndiyo” ¿sí? 5€") == "habari rafiki ndiyo sí 5"


def test_basic_drops_apostrophes_inside_words():
    assert normalize_basic("It's ng'ombe and ng’ombe") == "its ngombe and ngombe"


def test_basic_keeps_letters_of_any_script_and_digits():
    assert normalize_basic("Café Ünïcode Привет नमस्ते 42") == "café ünïcode привет नमस्ते 42"


def test_basic_leaves_numbers_as_digits():
    # no verbalisation: "25" and "twenty five" stay different words
    assert normalize_basic("Watu 25, si ishirini na tano.") == "watu 25 si ishirini na tano"
    assert normalize_basic("3.5") == "3 5"


# --- choice by language ------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ar", "AR", "ar-EG", "ar_SA", "arz", "ary", "apc", "arabic"])
def test_arabic_codes_pick_arabic_rules(lang):
    assert normalizer_for(lang)("أَحْمَد hello") == "احمد"


@pytest.mark.parametrize("lang", ["sw", "en", "fr", "", None])
def test_other_codes_pick_basic_rules(lang):
    assert normalizer_for(lang)("Hello, Rafiki!") == "hello rafiki"
