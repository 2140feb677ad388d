-- A 1,000,000-iteration decrement loop in a function the host calls.
function count_down()
  local x = 1000000
  while x > 0 do
    x = x - 1
  end
  return x
end
