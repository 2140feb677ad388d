// String work on a header value: lower-case it, split it on commas and
// count the parts that contain the family's domain.
function countFamily(h) {
  let n = 0;
  for (const part of h.toLowerCase().split(",")) {
    if (part.includes("doe-family.com")) {
      n++;
    }
  }
  return n;
}
