-- Membership in a 100,000-entry list built once when the script loads.
local entries = {}
for i = 0, 99999 do
  entries[#entries + 1] = "h" .. i .. ".example.com"
end
function member(x)
  for i = 1, #entries do
    if entries[i] == x then return true end
  end
  return false
end
