-- String work on a header value: lower-case it, split it on commas and
-- count the parts that contain the family's domain.
function count_family(h)
  local n = 0
  for part in string.gmatch(string.lower(h), "[^,]+") do
    if string.find(part, "doe-family.com", 1, true) then
      n = n + 1
    end
  end
  return n
end
