// Recursive Fibonacci; the host calls fib(20): 21,891 calls.
function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}
