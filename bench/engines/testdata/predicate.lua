-- A rule-shaped predicate over envelope-like fields, called once per message.
-- Lua has no "in": a set table is the idiom.
local blocked = { ["spam.example"] = true, ["junk.example"] = true, ["evil.example"] = true, ["phish.example"] = true }
function predicate(m)
  return blocked[m.domain] == true or (m.ip == "10.0.0.1" and m.size > 100)
end
