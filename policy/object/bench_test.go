package object

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Run: go test ./policy/object -run XXX -bench . -benchmem

// writeLines writes n generated lines to a file in dir.
func writeLines(b *testing.B, dir, name string, n int, line func(i int) string) string {
	b.Helper()
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		w.WriteString(line(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchContains looks xs up in list in turn, checking each answer.
func benchContains(b *testing.B, list vsl.HostContainer, xs []vsl.Value, want []bool) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(xs)
		got, err := list.Contains(xs[k])
		if err != nil || got != want[k] {
			b.Fatalf("%s in list = %v, %v; want %v", vsl.Debug(xs[k]), got, err, want[k])
		}
	}
}

// benchScript runs `|x| x in list` through the interpreter, as a rule would.
func benchScript(b *testing.B, list vsl.Value, xs []vsl.Value, want []bool) {
	env := newEnv()
	env.DefineConst("list", list)
	prog, err := vsl.Load("bench.vsl", []byte("|x| x in list"), env)
	if err != nil {
		b.Fatal(err)
	}
	th := vsl.NewThread(vsl.DefaultLimits())
	fn, err := prog.Run(th)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(xs)
		th.Reset(ctx)
		v, err := prog.Call(th, fn, xs[k])
		if err != nil || v.AsBool() != want[k] {
			b.Fatalf("%s in list = %s, %v; want %v", vsl.Debug(xs[k]), vsl.Debug(v), err, want[k])
		}
	}
}

// BenchmarkFileFQDN looks domains up in a file:fqdn list of 1,000,000
// lines: strings in the case they were written, strings in another case,
// fqdn objects, and misses.
func BenchmarkFileFQDN(b *testing.B) {
	const n = 1_000_000
	name := func(i int) string { return fmt.Sprintf("host%d.zone%d.example", i, i%997) }
	path := writeLines(b, b.TempDir(), "domains.txt", n, name)
	f, err := LoadFile(path, "fqdn")
	if err != nil {
		b.Fatal(err)
	}
	xs := []vsl.Value{
		vsl.String(name(12345)),
		vsl.String(strings.ToUpper(name(999_999)) + "."),
		FQDNValue(strings.Replace(name(500_000), "example", "EXAMPLE", 1)),
		vsl.String(name(n)),
		vsl.String("not-listed.example"),
	}
	want := []bool{true, true, true, false, false}
	b.Run("Contains", func(b *testing.B) { benchContains(b, f, xs, want) })
	b.Run("script", func(b *testing.B) { benchScript(b, vsl.Host(f), xs, want) })
}

// BenchmarkLoadFileFQDN reads and compiles a file:fqdn list of 1,000,000
// lines (the cost paid once, at load).
func BenchmarkLoadFileFQDN(b *testing.B) {
	path := writeLines(b, b.TempDir(), "domains.txt", 1_000_000, func(i int) string {
		return fmt.Sprintf("host%d.zone%d.example", i, i%997)
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := LoadFile(path, "fqdn"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileRg4 looks IP addresses up in a file:rg4 list of 100,000
// ranges of random lengths /8 to /32.
func BenchmarkFileRg4(b *testing.B) {
	const n = 100_000
	rng := rand.New(rand.NewPCG(1, 2))
	prefixes := make([]netip.Prefix, n)
	for i := range prefixes {
		a := netip.AddrFrom4([4]byte{byte(rng.IntN(224)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		bits := 16 + rng.IntN(17)
		if i%1000 == 0 {
			bits = 8 + rng.IntN(8)
		}
		prefixes[i] = netip.PrefixFrom(a, bits).Masked()
	}
	path := writeLines(b, b.TempDir(), "ranges.txt", n, func(i int) string { return prefixes[i].String() })
	f, err := LoadFile(path, "rg4")
	if err != nil {
		b.Fatal(err)
	}
	in := prefixes[4242].Addr().Next()
	if prefixes[4242].Bits() == 32 {
		in = prefixes[4242].Addr()
	}
	xs := []vsl.Value{
		IPValue(in),
		vsl.String(prefixes[777].Addr().String()),
		IPValue(netip.MustParseAddr("255.255.255.254")),
		vsl.String("240.0.0.1"),
	}
	want := []bool{true, true, false, false}
	b.Run("Contains", func(b *testing.B) { benchContains(b, f, xs, want) })
	b.Run("script", func(b *testing.B) { benchScript(b, vsl.Host(f), xs, want) })
}

// BenchmarkAddressEqualString compares an address with strings, as
// `rcpt() == "john@doe.com"` does.
func BenchmarkAddressEqualString(b *testing.B) {
	a := AddressValue("john.doe", "doe-family.com")
	xs := []vsl.Value{vsl.String("john.doe@doe-family.com"), vsl.String("john.doe@DOE-Family.com"), vsl.String("jane.doe@doe-family.com")}
	want := []bool{true, true, false}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(xs)
		if vsl.Equal(a, xs[k]) != want[k] {
			b.Fatalf("%s == %s", vsl.Debug(a), vsl.Debug(xs[k]))
		}
	}
}
