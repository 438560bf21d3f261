"""Per-element StackExchange logic, without Beam: rows, HTML to text, tags, licenses, pair choice."""

from __future__ import annotations

import pytest

from transforms import stackexchange as se
from transforms.stackexchange.html_text import html_to_text

ROW = (b'  <row Id="7" PostTypeId="1" AcceptedAnswerId="9" CreationDate="2012-01-01T00:00:00.000" Score="5" '
       b'Body="&lt;p&gt;Use &lt;code&gt;a &amp;amp;&amp;amp; b&lt;/code&gt; &amp;lt;here&amp;gt;&lt;/p&gt;&#xA;" '
       b'OwnerUserId="3" Title="How do I &amp;amp; why?" Tags="&lt;c++&gt;&lt;xml&gt;" />\r')


def test_row_attributes_are_decoded_once_by_xml_and_once_by_html():
    attrs = se.parse_row(ROW)
    post = se.post_from_attrs("x.stackexchange.com", attrs)
    assert post.title == "How do I &amp; why?"  # titles are plain text: one decoding only
    assert post.body == "Use a && b <here>"
    assert post.tags == ("c++", "xml")
    assert post.license == "CC BY-SA 3.0"
    assert post.author == "https://x.stackexchange.com/users/3"


@pytest.mark.parametrize("line", [b"", b"<?xml version=\"1.0\" encoding=\"utf-8\"?>", b"<posts>",
                                  b"</posts>\r", b"  <postlinks>"])
def test_envelope_lines_are_not_rows(line):
    assert se.parse_row(line) is None


@pytest.mark.parametrize("line,reason", [
    (b'<row Id="1" Body="truncated', "xml_syntax"),
    (b'<row Id="1" Body="bell \x07 char" />', "xml_syntax"),
    (b'<row Id="1" Body="\xff\xfe not utf-8" />', "xml_syntax"),
    (b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><row Body="&b;" />',
     "not_a_row"),
    (b'<row Id="1" Body="&xxe;" />', "xml_syntax"),
    (b'<row Id="2"><!ENTITY x SYSTEM "file:///etc/passwd"></row>', "dtd_or_entity_declaration"),
    (b'garbage', "not_a_row"),
    (b'<row Id="1"><b/></row>', "not_a_row"),
])
def test_malformed_rows_raise_with_a_reason(line, reason):
    with pytest.raises(se.RowError) as e:
        se.parse_row(line)
    assert e.value.reason == reason


def test_bad_fields_raise():
    with pytest.raises(se.RowError, match="bad_field"):
        se.post_from_attrs("s", {"Id": "x1", "PostTypeId": "1"})
    with pytest.raises(se.RowError, match="ParentId"):
        se.post_from_attrs("s", {"Id": "4", "PostTypeId": "2"})


def test_both_tag_encodings():
    assert se.parse_tags("<python><beam-io>") == ["python", "beam-io"]
    assert se.parse_tags("|python|beam-io|") == ["python", "beam-io"]
    assert se.parse_tags("") == []


def test_html_structure_code_blocks_and_images():
    html = ("<h1>Title</h1><p>Intro with <em>inline</em> <code>x&lt;y</code>.</p>"
            "<pre><code>for i in range(3):\n    print(i &amp; 1)\n</code></pre>"
            "<ol><li>first</li><li>second <a href='https://e.com'>link text</a></li></ol>"
            "<blockquote><p>quoted</p></blockquote><p><img src='a.png' alt='diagram'/>e\u0301</p>")
    assert html_to_text(html).split("\n") == [
        "Title", "Intro with inline x<y.", "for i in range(3):", "    print(i & 1)", "first", "second link text",
        "quoted", "diagram \u00e9"]
    assert "print" not in html_to_text(html, keep_code_blocks=False)
    assert html_to_text("") == "" and html_to_text("<p> </p>") == ""


def test_site_names_from_paths_and_archives():
    assert se.site_and_kind("gs://b/dumps/askubuntu.com/Posts.xml.gz") == ("askubuntu.com", "Posts")
    assert se.site_and_kind("/t/askubuntu.com/PostLinks-00003.xml") == ("askubuntu.com", "PostLinks")
    assert se.site_and_kind("/t/askubuntu.com/Comments.xml") is None
    assert se.site_of_archive("/d/stackoverflow.com-Posts.7z") == ("stackoverflow.com", "Posts")
    assert se.site_of_archive("/d/askubuntu.com.7z") == ("askubuntu.com", None)
    assert se.is_meta_site("french.meta.stackexchange.com") and se.is_meta_site("meta.stackoverflow.com")
    assert not se.is_meta_site("cardano.stackexchange.com")


def test_row_filters():
    wm = se.WATERMARK_POST_IDS
    assert se.post_filter_reason({"PostTypeId": "4"}, True, wm) == "post_type_4"
    assert se.post_filter_reason({"PostTypeId": "1", "Id": "1000000001", "OwnerUserId": "-1"}, True, wm) \
        == "watermark"
    assert se.post_filter_reason({"PostTypeId": "2", "Id": "5", "OwnerUserId": "-2"}, True, wm) == "answer_bot"
    assert se.post_filter_reason({"PostTypeId": "2", "Id": "5", "OwnerUserId": "-2"}, False, wm) is None


def _post(pid, ptype=2, score=0, body="an answer that is long enough", accepted=0, title=""):
    return se.Post("s", pid, ptype, 1 if ptype == 2 else pid, score, title, body, accepted, "CC BY-SA 4.0", "")


def test_best_answer_prefers_accepted_then_integer_scores():
    q = _post(1, 1, 3, "a question body long enough", accepted=4, title="A title long enough")
    answers = [_post(2, score=10), _post(3, score=9), _post(4, score=2), _post(5, score=-3)]
    o = se.PairOptions(min_answer_score=0)
    best, neg = se.choose_answers(q, answers, o)
    assert (best.id, neg.id) == (4, 5)
    best, neg = se.choose_answers(q, answers, se.PairOptions(min_answer_score=0, best_answer="top_scored"))
    assert (best.id, neg.id) == (2, 5)  # 10 > 9 as integers (as strings "9" > "10")
    best, neg = se.choose_answers(q, [_post(2, score=1), _post(3, score=1)], se.PairOptions(min_answer_score=0))
    assert best.id == 2 and neg is None  # tie: older answer; no answer 2 points lower


def test_thread_pairs_and_reasons():
    q = _post(1, 1, 3, "a question body long enough", accepted=0, title="A title long enough")
    o = se.PairOptions()
    got = dict(se.thread_pairs(q, [], se.THREAD_PAIR_TYPES, o))
    assert got["title_body"].texts == ("A title long enough", "a question body long enough")
    assert got["title_answer"] == "no_answers"
    got = dict(se.thread_pairs(q, [_post(2, score=0)], se.THREAD_PAIR_TYPES, o))
    assert got["title_answer"] == "no_answer_passes_filters"  # min_answer_score 1
    got = dict(se.thread_pairs(q, [_post(2, score=5), _post(3, score=1)], se.THREAD_PAIR_TYPES, o))
    assert got["title_body_answer"].texts[0] == "A title long enough\na question body long enough"
    assert got["title_body_answer_negative"].ids == (1, 2, 3)
    assert got["title_body_answer_negative"].urls == ("https://s/q/1", "https://s/a/2", "https://s/a/3")
    short = _post(1, 1, 3, "short", title="A title long enough")
    got = dict(se.thread_pairs(short, [_post(2, score=5)], se.THREAD_PAIR_TYPES, o))
    assert got["title_body"] == "body_too_short" and isinstance(got["title_answer"], se.PostPair)


def test_a_post_pair_is_fingerprinted_by_its_values():
    # transforms.dedup breaks ties between duplicates by the record's content (its field values in
    # order), never by its class or pickle.
    from transforms.dedup import fingerprint

    fields = ("title_body", "s", ("a", "b"), (1, 2), (0, 0), ("l", "l"), ("x", "y"), ("u", "v"))
    assert fingerprint(se.PostPair(*fields)) == fingerprint(fields)
