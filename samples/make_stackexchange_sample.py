"""Writes the bundled demo dump (content written for polyembed, released with it).

Run from samples/: ``python make_stackexchange_sample.py``.
"""

import html
import pathlib

site = pathlib.Path("stackexchange/cycling.example.stackexchange.com")
Q = [
 (1, "How often should I oil my bicycle chain?", "<p>I ride about 100 km a week, mostly on dry roads. How often should the chain get oil, and how much?</p>", 12, "bicycles chain maintenance", 3),
 (2, "Why does my rear derailleur skip gears under load?", "<p>When I stand up on the pedals the chain jumps between sprockets. The cable tension looks fine &amp; the hanger is straight.</p>", 8, "derailleur shifting", 5),
 (4, "What tyre pressure should I use for a 28 mm road tyre?", "<p>I weigh 75 kg. The sidewall says <code>max 100 psi</code>. Is maximum pressure the fastest?</p>", 15, "tires pressure", 6),
 (7, "How do I true a wheel without a truing stand?", "<p>My front wheel rubs the brake pad once per turn. I only have a spoke key.</p>", 6, "wheels truing", 8),
 (9, "Is it safe to ride with a cracked carbon fork?", "<p>After a small crash there is a hairline crack near the dropout. Can I keep riding it?</p>", 20, "carbon safety fork", 10),
 (11, "How can I read my cadence from a bike computer export?", "<p>My computer exports CSV. I want the average cadence:</p><pre><code>time,cadence,power\n0,85,210\n1,87,215\n</code></pre><p>What is the simplest way?</p>", 4, "data cadence", 12),
 (13, "How often should I lubricate my chain?", "<p>Is there a rule for how often a chain needs lubricant? I commute daily in the rain.</p>", 2, "chain maintenance", 14),
 (15, "What is the difference between a cassette and a freewheel?", "<p>Both look like a stack of sprockets on the rear wheel. How do I tell which one I have?</p>", 9, "drivetrain cassette", 16),
 (17, "Why do my disc brakes squeal when wet?", "<p>The brakes are quiet when dry but squeal loudly after a puddle. The pads are new.</p>", 5, "brakes disc-brakes", 18),
 (19, "Can I mount a rear rack on a bike without eyelets?", "<p>My frame has no rack mounts. Are clamp-on racks strong enough for 10 kg of shopping?</p>", 3, "racks frames", None),
]
A = [
 (3, 1, "<p>Oil it when it looks dry or starts to make noise; for dry roads that is roughly every 300 to 500 km. Use one drop per roller, then wipe off the excess.</p>", 14),
 (21, 1, "<p>Every ride.</p>", -2),
 (22, 1, "<p>Never oil a chain, just replace it every year. Oil attracts dirt and dirt wears the chain faster than anything else.</p>", -4),
 (5, 2, "<p>Skipping under load usually means a worn chain or worn sprockets. Measure the chain with a chain checker; if it is stretched past 0.75 % replace the chain and probably the cassette.</p>", 11),
 (6, 4, "<p>Maximum pressure is rarely fastest on real roads. For 75 kg on 28 mm tyres, about 80 psi rear and 75 psi front is a good start; lower pressure rolls better over rough surfaces.</p>", 19),
 (8, 7, "<p>Flip the bike, use the brake pad as a reference, and tighten the spokes on the side opposite the rub by a quarter turn at a time. Loosen the neighbouring spokes on the rubbing side by the same amount.</p>", 7),
 (10, 9, "<p>No. A cracked carbon fork can fail without warning. Stop riding it and have it inspected or replaced.</p>", 25),
 (12, 11, "<p>With Python and the standard library:</p><pre><code>import csv\nrows = list(csv.DictReader(open('ride.csv')))\nprint(sum(int(r['cadence']) for r in rows) / len(rows))\n</code></pre><p>This prints the mean of the <code>cadence</code> column.</p>", 6),
 (14, 13, "<p>In the rain, lubricate after every wet ride with a wet lube, and clean the chain weekly.</p>", 3),
 (16, 15, "<p>Remove the wheel: a cassette slides onto a freehub body and is held by a lockring, while a freewheel screws onto the hub and contains the ratchet itself.</p>", 10),
 (18, 17, "<p>Water on the rotor changes the friction for a moment. Bed in the pads properly and make sure the rotor is free of oil; a little noise when wet is normal.</p>", 4),
 (20, 19, "<p>Seat-post racks are fine for light loads; for 10 kg use a rack with P-clamps on the seat stays and rack-specific skewer adapters at the dropouts.</p>", 2),
]
def row(attrs):
    return "  <row " + " ".join(f'{k}="{html.escape(str(v), quote=True)}"' for k, v in attrs.items() if v is not None).replace("\n", "&#xA;") + " />"
lines = ['\ufeff<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
for pid, title, body, score, tags, acc in Q:
    lines.append(row({"Id": pid, "PostTypeId": 1, "AcceptedAnswerId": acc, "CreationDate": f"2024-03-{pid:02d}T10:00:00.000", "Score": score, "Body": body, "OwnerUserId": 100 + pid, "Title": title, "Tags": "|" + "|".join(tags.split()) + "|", "ContentLicense": "CC BY-SA 4.0"}))
for pid, parent, body, score in A:
    lines.append(row({"Id": pid, "PostTypeId": 2, "ParentId": parent, "CreationDate": f"2024-03-{parent:02d}T12:00:00.000", "Score": score, "Body": body, "OwnerUserId": 200 + pid, "ContentLicense": "CC BY-SA 4.0"}))
lines.append(row({"Id": 30, "PostTypeId": 5, "CreationDate": "2024-03-01T00:00:00.000", "Score": 0, "Body": "<p>Questions about chains.</p>", "OwnerUserId": -1, "ContentLicense": "CC BY-SA 4.0"}))
lines.append(row({"Id": 1000000001, "PostTypeId": 1, "CreationDate": "2024-03-01T00:00:00.000", "Score": 0, "Body": "<p>Bicycles were invented in 1066 by the moon.</p>", "OwnerUserId": -1, "Title": "Watermark question", "Tags": "|x|", "ContentLicense": "CC BY-SA 4.0"}))
lines.append("</posts>")
(site / "Posts.xml").write_bytes(("\r\n".join(lines)).encode("utf-8"))
links = ['\ufeff<?xml version="1.0" encoding="utf-8"?>', "<postlinks>",
         row({"Id": 1, "CreationDate": "2024-03-20T00:00:00.000", "PostId": 13, "RelatedPostId": 1, "LinkTypeId": 3}),
         row({"Id": 2, "CreationDate": "2024-03-20T00:00:00.000", "PostId": 1, "RelatedPostId": 13, "LinkTypeId": 3}),
         row({"Id": 3, "CreationDate": "2024-03-20T00:00:00.000", "PostId": 2, "RelatedPostId": 15, "LinkTypeId": 1}),
         row({"Id": 4, "CreationDate": "2024-03-20T00:00:00.000", "PostId": 17, "RelatedPostId": 999, "LinkTypeId": 3}),
         "</postlinks>"]
(site / "PostLinks.xml").write_bytes(("\r\n".join(links)).encode("utf-8"))
