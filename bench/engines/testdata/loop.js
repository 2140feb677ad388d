// A 1,000,000-iteration decrement loop in a function the host calls.
function countDown() {
  let x = 1000000;
  while (x > 0) {
    x -= 1;
  }
  return x;
}
