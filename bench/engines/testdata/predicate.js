// A rule-shaped predicate over envelope-like fields, called once per message.
const blocked = ["spam.example", "junk.example", "evil.example", "phish.example"];
function predicate(m) {
  return blocked.includes(m.domain) || (m.ip === "10.0.0.1" && m.size > 100);
}
