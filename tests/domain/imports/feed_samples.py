"""Sample feeds for the import tests: an Arabic podcast (two audio enclosures, iTunes and
Podcasting 2.0 fields), an Atom feed, a mixed Arabic/English RSS feed, and a billion-laughs document."""

from __future__ import annotations

ARABIC_PODCAST = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
     xmlns:podcast="https://podcastindex.org/namespace/1.0"
     xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
  <title>بودكاست ثمانية</title>
  <link>https://podcast.example/</link>
  <language>ar-SA</language>
  <ttl>90</ttl>
  <itunes:image href="https://podcast.example/cover.jpg"/>
  <item>
    <title>الحلقة الأولى: عن القراءة</title>
    <guid isPermaLink="false">thmanyah-ep-1</guid>
    <link>https://podcast.example/episodes/1</link>
    <description>حديث عن &lt;b&gt;القراءة&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;</description>
    <content:encoded><![CDATA[<p>نص الحلقة <a href="javascript:steal()">كاملاً</a></p>]]></content:encoded>
    <pubDate>Tue, 01 Dec 2026 10:00:00 +0300</pubDate>
    <enclosure url="https://cdn.podcast.example/ep1.mp3" type="audio/mpeg" length="48213004"/>
    <itunes:episode>1</itunes:episode>
    <itunes:season>2</itunes:season>
    <itunes:duration>01:02:03</itunes:duration>
    <itunes:explicit>false</itunes:explicit>
    <itunes:episodeType>full</itunes:episodeType>
    <itunes:image href="https://podcast.example/ep1.jpg"/>
  </item>
  <item>
    <title>الحلقة الثانية: عن الكتابة</title>
    <guid isPermaLink="false">thmanyah-ep-2</guid>
    <description>حديث عن الكتابة</description>
    <pubDate>Wed, 02 Dec 2026 10:00:00 +0300</pubDate>
    <enclosure url="https://cdn.podcast.example/ep2.m4a" type="audio/mp4" length="not-a-number"/>
    <enclosure url="https://cdn.podcast.example/ep2-notes.pdf" type="application/pdf" length="1000"/>
    <podcast:episode>2</podcast:episode>
    <podcast:season>2</podcast:season>
    <itunes:duration>2710</itunes:duration>
    <itunes:explicit>true</itunes:explicit>
  </item>
</channel>
</rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Thmanyah Notes</title>
  <id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>
  <link href="https://notes.example/"/>
  <updated>2026-12-03T08:00:00Z</updated>
  <entry>
    <title>On reading</title>
    <id>urn:note:1</id>
    <link href="/notes/1"/>
    <updated>2026-12-03T08:00:00Z</updated>
    <published>2026-12-02T08:00:00Z</published>
    <summary>Why we read.</summary>
    <content type="html">&lt;p&gt;Long form &lt;em&gt;text&lt;/em&gt;&lt;/p&gt;</content>
    <link rel="enclosure" href="https://notes.example/talk.mp4" type="video/mp4" length="1000"/>
  </entry>
  <entry xml:lang="ar">
    <title>عن الكتابة</title>
    <id>urn:note:2</id>
    <link href="https://notes.example/notes/2"/>
    <updated>2026-12-04T08:00:00Z</updated>
    <summary>لماذا نكتب</summary>
  </entry>
</feed>"""

MIXED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
  <title>Mixed / مختلط</title>
  <language>en</language>
  <item><title>English news</title><guid>m-1</guid><description>Hello there</description></item>
  <item><title>خبر عربي</title><guid>m-2</guid><description>مرحبا بكم</description></item>
  <item><guid>m-3</guid><description>نص بلا عنوان ولا تاريخ</description></item>
  <item><title>Second English</title><guid>m-1</guid><description>the same guid again</description></item>
  <item><title>No guid</title><link>https://mixed.example/4</link></item>
  <item><title>No guid</title><link>https://mixed.example/4</link></item>
  <item><title>Only a title</title></item>
  <item><title>Only a title</title></item>
  <item></item>
</channel></rss>"""


def billion_laughs(levels: int = 9) -> bytes:
    """10**levels "lol"s (3 GB at 9) from a few hundred bytes of DTD."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, levels + 1)
    )
    return (
        f'<?xml version="1.0"?><!DOCTYPE rss [{entities}]><rss version="2.0"><channel>'
        f"<title>&lol{levels};</title><item><title>&lol{levels};</title><guid>1</guid></item>"
        "</channel></rss>"
    ).encode()
