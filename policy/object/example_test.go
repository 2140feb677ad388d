package object_test

import (
	"fmt"
	"net/netip"

	"github.com/vsl-milter/vsl-milter/policy/object"
	"github.com/vsl-milter/vsl-milter/vsl"
)

// The transaction API builds objects without checking them; scripts
// compare them with strings by the objects' rules.
func Example() {
	sender := object.AddressValue("John.Doe", "Example.COM")
	client := object.IPValue(netip.MustParseAddr("::ffff:192.0.2.1"))

	fmt.Println(sender.TypeName(), vsl.Equal(sender, vsl.String("John.Doe@example.com")))
	fmt.Println(client.TypeName(), vsl.Equal(client, vsl.String("192.0.2.1")))
	// Output:
	// address true
	// ip4 true
}

// A v1 declaration `object lan rg4 = "10.0.0.0/8";` and a lookup in it.
func ExampleDeclare() {
	lan, err := object.Declare("rg4", vsl.String("10.0.0.0/8"), "/etc/vsmtp/rules/objects.vsl")
	if err != nil {
		fmt.Println(err)
		return
	}
	in, _ := lan.AsHost().(vsl.HostContainer).Contains(vsl.String("10.1.2.3"))
	fmt.Println(vsl.ToString(lan), in)

	_, err = object.Declare("ip4", vsl.String("300.1.1.1"), "objects.vsl")
	fmt.Println(err)
	// Output:
	// 10.0.0.0/8 true
	// invalid ip4 "300.1.1.1": IPv4 field has value >255
}

// ToCode reads what a script passes to deny() or accept().
func ExampleToCode() {
	for _, v := range []vsl.Value{
		vsl.String("451 4.7.1 try again later"),
		vsl.NewMap(map[string]vsl.Value{"code": vsl.Int(550), "enhanced": vsl.String("5.7.1"), "text": vsl.String("no")}),
		vsl.String("554"),
	} {
		c, err := object.ToCode(v)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%d %q %q\n", c.Code, c.Enhanced, c.Text)
	}
	// Output:
	// 451 "4.7.1" "try again later"
	// 550 "5.7.1" "no"
	// 554 "" ""
}
