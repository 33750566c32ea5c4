"""Notification templates (domain.notifications.templates): sandboxed Jinja, per-language helpers,
the RTL/LTR email layout, plain-text alternatives and validation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from jinja2.exceptions import UndefinedError
from jinja2.sandbox import SecurityError

from domain.notifications import templates
from domain.notifications.templates import (
    Rendered,
    TemplateError,
    TemplateSource,
    locale_chain,
    pick,
    render,
    text_direction,
    validate,
    variables,
)

WELCOME = TemplateSource(
    subject="  أهلاً {{ user.name }}\n  في ثمانية  ",
    text="مرحبا {{ user.name }}",
    html="<p>مرحبا <b>{{ user.name }}</b></p>",
)


# --- layout and direction ----------------------------------------------------------------------------


def test_arabic_email_is_rtl_with_lang_and_the_subject_intact() -> None:
    rendered = render(WELCOME, {"user": {"name": "سارة"}}, language="ar", channel="email")

    assert rendered.subject == "أهلاً سارة في ثمانية"
    assert (rendered.language, rendered.direction) == ("ar", "rtl")
    assert rendered.html is not None
    assert rendered.html.startswith("<!doctype html>")
    assert '<html lang="ar" dir="rtl">' in rendered.html
    assert '<body dir="rtl" style="' in rendered.html
    assert "direction:rtl;text-align:right;" in rendered.html
    assert "<p>مرحبا <b>سارة</b></p>" in rendered.html
    assert "<title>أهلاً سارة في ثمانية</title>" in rendered.html
    assert rendered.text == "مرحبا سارة"


def test_english_email_is_ltr() -> None:
    rendered = render(WELCOME, {"user": {"name": "Sara"}}, language="en", channel="email")

    assert rendered.direction == "ltr"
    assert rendered.html is not None
    assert '<html lang="en" dir="ltr">' in rendered.html
    assert '<body dir="ltr"' in rendered.html
    assert "direction:ltr;text-align:left;" in rendered.html
    assert "rtl" not in rendered.html


def test_regional_language_keeps_its_tag_and_direction() -> None:
    rendered = render(WELCOME, {"user": {"name": "سارة"}}, language="ar_sa", channel="email")

    assert (rendered.language, rendered.direction) == ("ar-SA", "rtl")
    assert rendered.html is not None and '<html lang="ar-SA" dir="rtl">' in rendered.html


@pytest.mark.parametrize(
    ("language", "direction"),
    [
        ("ar", "rtl"),
        ("ar-EG", "rtl"),
        ("fa", "rtl"),
        ("he", "rtl"),
        ("ur_PK", "rtl"),
        ("en", "ltr"),
        ("fr-FR", "ltr"),
        ("AR", "rtl"),
        ("", "ltr"),
    ],
)
def test_text_direction(language: str, direction: str) -> None:
    assert text_direction(language) == direction


@pytest.mark.parametrize("start", ["<!doctype html>", "  <!DOCTYPE html>", "<html lang='ar'>"])
def test_a_whole_document_is_not_wrapped_again(start: str) -> None:
    source = TemplateSource("s", "t", start + "<body>{{ x }}</body></html>")

    rendered = render(source, {"x": 1}, language="ar", channel="email")

    assert rendered.html is not None
    assert rendered.html.lower().count("<body") == 1
    assert rendered.html == start + "<body>1</body></html>"


def test_globals_language_and_direction_win_over_data() -> None:
    source = TemplateSource("{{ language }}/{{ direction }}", "{{ language }}|{{ direction }}")

    rendered = render(source, {"language": "en", "direction": "ltr"}, language="ar-SA", channel="push")

    assert (rendered.subject, rendered.text) == ("ar-SA/rtl", "ar-SA|rtl")


# --- helpers bound to the language -----------------------------------------------------------------------

FORMATS = TemplateSource(
    subject="s",
    text="{{ day | date('long') }}|{{ day | date('short') }}|{{ iso | date('d MMMM y') }}|"
    "{{ at | datetime('medium', tz='Asia/Riyadh') }}|{{ amount | currency('SAR') }}|{{ n | number }}",
)
FORMAT_DATA = {
    "day": date(2024, 3, 5),
    "iso": "2024-03-05",
    "at": datetime(2024, 3, 5, 18, 30, tzinfo=UTC),
    "amount": 1234.5,
    "n": 1234567.891,
}


def test_dates_and_numbers_in_arabic() -> None:
    rendered = render(FORMATS, FORMAT_DATA, language="ar", channel="sms")

    assert rendered.text.split("|") == [
        "5 مارس 2024",
        "5\u200f/3\u200f/2024",
        "5 مارس 2024",
        "05\u200f/03\u200f/2024، 9:30:00 م",  # 18:30 UTC is 21:30 in Riyadh
        "\u200f1,234.50\xa0ر.س.\u200f",
        "1,234,567.891",  # Babel's default numbering system for `ar` is Latin digits
    ]


def test_dates_and_numbers_in_english() -> None:
    rendered = render(FORMATS, FORMAT_DATA, language="en", channel="sms")

    assert rendered.text.split("|") == [
        "March 5, 2024",
        "3/5/24",
        "5 March 2024",
        "Mar 5, 2024, 9:30:00\u202fPM",
        "SAR1,234.50",
        "1,234,567.891",
    ]


def test_number_separators_follow_the_region() -> None:
    source = TemplateSource("s", "{{ n | number }}|{{ p | percent }}")

    moroccan = render(source, {"n": 1234567.891, "p": 0.256}, language="ar-MA", channel="sms")
    swiss = render(source, {"n": 1234567.891, "p": 0.256}, language="de-CH", channel="sms")

    assert moroccan.text == "1.234.567,891|26%"
    assert swiss.text == "1’234’567.891|26%"


def test_one_instant_in_two_zones_formats_in_each_zone() -> None:
    # Equal datetimes compare and hash alike; the formatting cache must still keep them apart.
    source = TemplateSource("s", "{{ utc | datetime('short') }}|{{ riyadh | datetime('short') }}")
    utc = datetime(2024, 3, 5, 18, 30, tzinfo=UTC)

    rendered = render(
        source, {"utc": utc, "riyadh": utc.astimezone(ZoneInfo("Asia/Riyadh"))}, language="en", channel="sms"
    )

    assert rendered.text == "3/5/24, 6:30\u202fPM|3/5/24, 9:30\u202fPM"


def test_date_filter_refuses_what_is_not_a_date() -> None:
    with pytest.raises(TemplateError) as caught:
        render(
            TemplateSource("s", "ok\n{{ when | date }}"),
            {"when": "next tuesday"},
            language="en",
            channel="sms",
        )

    assert (caught.value.part, caught.value.line) == ("text", 2)
    assert "next tuesday" in caught.value.message


TITLE = {"ar": "حلقة جديدة", "en": "New episode"}


@pytest.mark.parametrize(
    ("value", "language", "default", "expected"),
    [
        pytest.param(TITLE, "ar-SA", "en", "حلقة جديدة", id="region-falls-back-to-base"),
        pytest.param(TITLE, "en-GB", "ar", "New episode", id="english"),
        pytest.param(TITLE, "fr", "en", "New episode", id="missing-language-takes-default"),
        pytest.param(TITLE, "fr", "ar", "حلقة جديدة", id="default-is-a-setting"),
        pytest.param({"AR": "كبير", "EN": "big"}, "ar", "en", "كبير", id="keys-case-insensitive"),
        pytest.param({"ar": "", "en": "Only English"}, "ar", "en", "Only English", id="empty-is-missing"),
        pytest.param({"ar": "عربي فقط"}, "en", "en", "عربي فقط", id="any-text-rather-than-none"),
        pytest.param("plain", "ar", "en", "plain", id="plain-string-passes"),
    ],
)
def test_t_filter(value: object, language: str, default: str, expected: str) -> None:
    rendered = render(
        TemplateSource("s", "{{ title | t }}"),
        {"title": value},
        language=language,
        channel="in_app",
        default_language=default,
    )

    assert rendered.text == expected


# --- locale chain ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "default", "chain"),
    [
        ("ar-SA", "en", ["ar-SA", "ar", "en"]),
        ("ar_sa", "en", ["ar-SA", "ar", "en"]),
        ("AR-sa", "EN", ["ar-SA", "ar", "en"]),
        ("ar", "ar", ["ar"]),
        ("en-US", "en", ["en-US", "en"]),
        ("zh_hant_tw", "en", ["zh-Hant-TW", "zh-Hant", "zh", "en"]),
        ("", "en", ["en"]),
        ("ar_SA.UTF-8", "en", ["ar-SA", "ar", "en"]),
    ],
)
def test_locale_chain(locale: str, default: str, chain: list[str]) -> None:
    assert locale_chain(locale, default) == chain


def test_pick_follows_the_chain() -> None:
    assert pick({"ar": 1, "en": 2, "ar-SA": 3}, "ar-SA", "en") == ("ar-SA", 3)
    assert pick({"ar": 1, "en": 2}, "ar-SA", "en") == ("ar", 1)
    assert pick({"fr": 0, "en": 2}, "ar-SA", "en") == ("en", 2)
    assert pick({"AR_sa": 5}, "ar-SA", "en") == ("AR_sa", 5)
    assert pick({"fr": 0}, "ar-SA", "en") is None
    assert pick({}, "ar", "en") is None


# --- errors ---------------------------------------------------------------------------------------------


def test_syntax_error_names_part_and_line() -> None:
    source = TemplateSource("s", "fine", "<p>\n  hello\n  {{ user.name }\n</p>")

    with pytest.raises(TemplateError) as caught:
        validate(source, language="en", channel="email", sample={"user": {"name": "x"}})

    assert caught.value.part == "html"
    assert caught.value.line == 3
    assert str(caught.value) == "html, line 3: unexpected '}'"
    assert isinstance(caught.value, ValueError)


def test_syntax_error_in_the_subject() -> None:
    with pytest.raises(TemplateError) as caught:
        validate(TemplateSource("{% if x %}open", "t"), language="en", channel="push", sample={"x": 1})

    assert caught.value.part == "subject"
    assert "endif" in caught.value.message


def test_unknown_filter_is_a_syntax_error() -> None:
    with pytest.raises(TemplateError) as caught:
        validate(TemplateSource("s", "{{ x | shout }}"), language="en", channel="sms", sample={"x": 1})

    assert (caught.value.part, caught.value.line) == ("text", 1)
    assert "shout" in caught.value.message


def test_undefined_variable_is_named() -> None:
    source = TemplateSource("Hi", "Hello\n{{ user.name }}")

    with pytest.raises(TemplateError) as caught:
        validate(source, language="en", channel="email", sample={"account": {}})

    assert caught.value.part == "text"
    assert caught.value.message == "'user' is undefined"
    assert str(caught.value) == "text, line 2: 'user' is undefined"
    assert isinstance(caught.value.__cause__, UndefinedError)


def test_missing_key_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(TemplateError) as caught:
        render(TemplateSource("{{ user.nmae }}", "t"), {"user": {"name": "x"}}, language="en", channel="push")

    assert caught.value.part == "subject"
    assert "nmae" in caught.value.message


def test_none_prints_as_nothing() -> None:
    rendered = render(TemplateSource("s", "[{{ x }}]"), {"x": None}, language="en", channel="sms")

    assert rendered.text == "[]"


# --- sandbox -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ user.__class__ }}",
        "{{ user | attr('__class__') }}",
    ],
)
def test_sandbox_blocks_internal_attributes(expression: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(TemplateSource("s", expression), {"user": {"name": "x"}}, language="en", channel="sms")

    assert caught.value.part == "text"
    assert "is unsafe" in caught.value.message
    assert isinstance(caught.value.__cause__, SecurityError)


@pytest.mark.parametrize(
    "expression",
    [
        "{{ data.update({'admin': True}) }}",
        "{{ data.clear() }}",
        "{{ items.append(4) }}",
        "{% set _ = items.pop() %}",
    ],
)
def test_sandbox_refuses_to_mutate_data(expression: str) -> None:
    data = {"data": {"admin": False}, "items": [1, 2, 3]}

    with pytest.raises(TemplateError) as caught:
        render(TemplateSource("s", expression), data, language="en", channel="sms")

    assert isinstance(caught.value.__cause__, SecurityError)
    assert data == {"data": {"admin": False}, "items": [1, 2, 3]}


def test_sandbox_bounds_repetition_and_powers() -> None:
    for expression in ("{{ 'a' * 10000000 }}", "{{ [1] * 10000000 }}", "{{ 10 ** 100000 }}"):
        with pytest.raises(TemplateError) as caught:
            render(TemplateSource("s", expression), {}, language="en", channel="sms")
        assert isinstance(caught.value.__cause__, SecurityError), expression
    assert (
        render(TemplateSource("s", "{{ '-' * 3 }}{{ 2 ** 10 }}"), {}, language="en", channel="sms").text
        == "---1024"
    )


BIG = '{% set big = "x" * 100000 %}'
RUNAWAY = [
    # (source, what the error names)
    ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "longer than 0.2 s"),
    ("{% for a in range(100000) recursive %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "longer than"),
    ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}", "longer than"),
    ("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}", "1,000,000 characters"),
    (BIG + "{% set b %}{% for i in range(100000) %}{{ big }}{% endfor %}{% endset %}.", "1,000,000 characters"),
    (BIG + "{% set ns = namespace(s=big) %}{% for i in range(99) %}{% set ns.s = ns.s ~ big %}{% endfor %}.",
     "1,100,000 characters"),
    (BIG + '{{ range(100000) | map("center", 999999) | list | length }}', "20,000,000 characters"),
    ('{{ "x" | center(10**9) }}', "1,000,000,000"),
    ('{{ "x".rjust(10**9) }}', "1,000,000,000"),
    ('{{ "%0*d" % (10**9, 1) }}', "1,000,000,000"),
    ('{{ "%.1000000000f" | format(1.5) }}', "1,000,000,000"),
    ('{{ "{:>{}}".format("x", 10**9) }}', "1,000,000,000"),
    (BIG + '{{ big | replace("", big) }}', "10,000,200,000 characters"),
    (BIG + "{{ ([big] * 100000) | join }}", "10,000,000,000 characters"),
    (BIG + "{{ (big | list) | join(big) }}", "characters"),
    (BIG + '{{ "-".join([big] * 100000) }}', "characters"),
    (BIG + "{{ big | wordwrap(1, wrapstring=big) }}", "characters"),
    (BIG + "{{ [big] * 100000 }}", "printing this value"),
    (BIG + '{{ "%s" % ([big] * 100000,) }}', "printing this value"),
    (BIG + "{{ ([big] * 100000) | tojson }}", "printing this value"),
    (BIG + "{{ ([big] * 100000) | upper }}", "printing this value"),
    (BIG + '{{ "" ~ [big] * 100000 }}', "printing this value"),
    ("{{ ([[1]] * 100000) | sum(start=[]) }}", "numbers only"),
    ("{% set a = 10 ** 1000 %}{{ a ** 1000 }}", "100,000 bits"),
    ("{% set a = 10 ** 1000 %}{% set b = a * a %}{% set c = b * b %}{% set d = c * c %}{% set e = d * d %}"
     "{% set f = e * e %}{% set g = f * f %}{{ g > 0 }}", "100,000 bits"),
    ("{{ lipsum(1000000) }}", "'lipsum' is undefined"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "says"), RUNAWAY)
def test_a_render_is_bounded_in_time_and_size(monkeypatch, source: str, says: str) -> None:
    # Only the limit under test may stop it: a short time limit for the time cases, a long one for the
    # size cases (on a busy machine a short one could end those first).
    monkeypatch.setattr(templates, "RENDER_SECONDS", 0.2 if "longer than" in says else 60.0)
    with pytest.raises(TemplateError) as caught:
        render(TemplateSource("s", source), {}, language="en", channel="sms")
    assert says in caught.value.message and caught.value.part == "text", caught.value


def test_the_limits_leave_ordinary_templates_alone() -> None:
    source = TemplateSource(
        "{{ 'Order %d' % 5000000 }}",
        "{% for x in items %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}{% else %}none"
        "{% endfor %} {{ items | map('string') | join('-') }} {{ '+'.join(items | map('string')) }}"
        " {{ '{}:{:>5}'.format('a', 5000000) }} {{ 'ab' | center(6) }}|{{ ([1] * 3) | sum }}"
        " {% for n in tree recursive %}{{ n.name }}{% if n.kids %}({{ loop(n.kids) }}){% endif %}{% endfor %}"
        " {{ ('x' * 100000) | length }}",
    )
    data = {"items": [3, 1, 2], "tree": [{"name": "a", "kids": [{"name": "b", "kids": []}]}]}
    rendered = render(source, data, language="en", channel="sms")
    assert rendered.subject == "Order 5000000"
    assert rendered.text == "1/3,2/3,3/3 3-1-2 3+1+2 a:5000000   ab  |3 a(b) 100000"


def test_dict_keys_shadowing_dict_methods_keep_jinja_semantics() -> None:
    # `x.items` is the method, as in plain Jinja; the key is reachable with a subscript.
    source = TemplateSource("s", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d['items'] }}")

    assert render(source, {"d": {"items": 2}}, language="en", channel="sms").text == "items=2;2"


# --- escaping and alternatives --------------------------------------------------------------------------------


def test_html_escapes_data_and_text_does_not() -> None:
    source = TemplateSource("{{ title }}", "{{ title }}", "<h1>{{ title }}</h1>")
    title = "<script>alert('x')</script> & co"

    rendered = render(source, {"title": title}, language="en", channel="email")

    assert rendered.html is not None
    assert "<h1>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co</h1>" in rendered.html
    assert "<script>" not in rendered.html
    assert rendered.text == title
    assert rendered.subject == title


def test_html_derived_plain_text_keeps_link_targets() -> None:
    source = TemplateSource(
        "s",
        "",
        """<h1>{{ title | t }}</h1>
<p>Watch <a href="{{ url }}">the new episode</a> now.</p>


<p>Or visit <a href="https://thmanyah.test">https://thmanyah.test</a>.<br>Thanks</p>
<ul><li>one</li><li>two</li></ul>
<style>p { color: red }</style>
<p><a href="mailto:help@thmanyah.test">Write to us</a></p>""",
    )

    rendered = render(
        source,
        {"title": {"en": "Hello"}, "url": "https://thmanyah.test/e/1?a=1&b=2"},
        language="en",
        channel="email",
    )

    assert rendered.text == (
        "Hello\n\n"
        "Watch the new episode (https://thmanyah.test/e/1?a=1&b=2) now.\n\n"
        "Or visit https://thmanyah.test.\nThanks\n\n"
        "- one\n- two\n\n"
        "Write to us (help@thmanyah.test)"
    )
    assert rendered.html is not None and 'href="https://thmanyah.test/e/1?a=1&amp;b=2"' in rendered.html


def test_email_without_html_gets_paragraphs_from_the_text() -> None:
    source = TemplateSource("s", "مرحبا {{ name }}\nسطر ثان\n\nاقرأ: https://thmanyah.test/x.")

    rendered = render(source, {"name": "<سارة>"}, language="ar", channel="email")

    assert rendered.text == "مرحبا <سارة>\nسطر ثان\n\nاقرأ: https://thmanyah.test/x."
    assert rendered.html is not None
    assert '<html lang="ar" dir="rtl">' in rendered.html
    assert '<p style="margin:0 0 16px;">مرحبا &lt;سارة&gt;<br>\nسطر ثان</p>' in rendered.html
    assert '<a href="https://thmanyah.test/x">https://thmanyah.test/x</a>.</p>' in rendered.html


@pytest.mark.parametrize("channel", ["sms", "push", "in_app", "webhook"])
def test_other_channels_have_no_html(channel: str) -> None:
    rendered = render(WELCOME, {"user": {"name": "Sara"}}, language="en", channel=channel)

    assert rendered == Rendered(
        subject="أهلاً Sara في ثمانية", text="مرحبا Sara", html=None, language="en", direction="ltr"
    )


def test_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="fax"):
        render(WELCOME, {"user": {"name": "x"}}, language="en", channel="fax")


# --- validation ----------------------------------------------------------------------------------------------


def test_sms_length_limit() -> None:
    source = TemplateSource("s", "{{ 'x' * n }}")

    assert len(validate(source, language="en", channel="sms", sample={"n": 1000}).text) == 1000
    with pytest.raises(TemplateError) as caught:
        validate(source, language="en", channel="sms", sample={"n": 1001})
    assert caught.value.part == "text"
    assert "1,001" in caught.value.message and "1,000" in caught.value.message
    # the limit is the SMS channel's: the same text is fine as a push, and render() does not refuse
    assert len(validate(source, language="en", channel="push", sample={"n": 1001}).text) == 1001
    assert len(render(source, {"n": 1001}, language="en", channel="sms").text) == 1001


def test_subject_length_limit_counts_the_collapsed_subject() -> None:
    source = TemplateSource("{{ 'x' * n }}\n\n\n", "t")

    assert len(validate(source, language="en", channel="email", sample={"n": 300}).subject) == 300
    with pytest.raises(TemplateError) as caught:
        validate(source, language="en", channel="email", sample={"n": 301})
    assert caught.value.part == "subject"


def test_validate_compiles_html_even_when_the_channel_does_not_use_it() -> None:
    with pytest.raises(TemplateError) as caught:
        validate(TemplateSource("s", "t", "{% for %}"), language="en", channel="sms", sample={})

    assert caught.value.part == "html"


def test_validate_returns_the_preview() -> None:
    preview = validate(WELCOME, language="ar", channel="email", sample={"user": {"name": "سارة"}})

    assert preview.subject == "أهلاً سارة في ثمانية"
    assert preview.html is not None and 'dir="rtl"' in preview.html


def test_variables_lists_what_the_template_reads() -> None:
    source = TemplateSource(
        "{{ user.name }} {{ language }}",
        "{% for item in items %}{{ item.title | t }} {{ loop.index }}{% endfor %}{% set x = 1 %}{{ x }}",
        "<a href='{{ url }}'>{{ direction }}</a>",
    )

    assert variables(source) == {"user", "items", "url"}


def test_variables_reports_syntax_errors() -> None:
    with pytest.raises(TemplateError) as caught:
        variables(TemplateSource("s", "a\nb\n{{ x "))

    assert (caught.value.part, caught.value.line) == ("text", 3)
