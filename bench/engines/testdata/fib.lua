-- Recursive Fibonacci; the host calls fib(20): 21,891 calls.
function fib(n)
  if n < 2 then return n end
  return fib(n - 1) + fib(n - 2)
end
