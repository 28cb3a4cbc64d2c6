import re
import string

from core import i18n


def test_every_key_has_both_languages_with_the_same_placeholders():
    fields = lambda s: sorted({f for _, f, _, _ in string.Formatter().parse(s) if f})  # noqa: E731
    for key, entry in i18n.table().items():
        assert set(entry) == set(i18n.LANGS), key
        assert all(entry[lang].strip() for lang in i18n.LANGS), key
        assert fields(entry["en"]) == fields(entry["zh"]), key


def test_keys_are_dotted_names():
    assert all(re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", key) for key in i18n.table())


def test_unknown_key_is_shown_as_itself_and_params_are_filled():
    assert i18n.t("no.such.key", "zh") == "no.such.key"
    assert "xyz" in i18n.t("device.unavailable", "en", name="xyz")


def test_browser_language_picks_chinese_only_when_asked():
    assert i18n.lang_from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert i18n.lang_from_accept_language("en-US,zh;q=0.5") == "en"
    assert i18n.lang_from_accept_language(None) == "en"
    assert i18n.lang_from_accept_language("fr-FR") == "en"
