// Membership in a 100,000-entry list built once when the script loads.
const entries = [];
for (let i = 0; i < 100000; i++) {
  entries.push("h" + i + ".example.com");
}
function member(x) {
  return entries.includes(x);
}
