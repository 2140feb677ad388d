package object

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/vsl-milter/vsl-milter/vsl"
)

// Define registers in env:
//   - the v2 constructors ip4, ip6, rg4, rg6, fqdn, address, regex and
//     identifier (one string each), file(path, "type") (the path relative
//     to the calling script's directory), and code(550, "5.7.1", "text"),
//     code(550, "text") and code("550 5.7.1 text");
//   - vSMTP's predefined replies, as the v1 constants code554_7_1,
//     code550_7_20 … code550_7_27, code451_7_24, code556_1_10,
//     code_greylist, code_multi_destination, code_unknown_account, and as
//     the v2 functions code::c554_7_1(), code::c451_7_1(),
//     code::c550_7_20() … code::c550_7_27(), code::c500_7_26(),
//     code::c556_1_10(), code::c451_3_0(), code::c550_1_1();
//   - vSMTP's v1 range constants net_10, net_172, net_192 and the group
//     non_routable_net;
//   - the getters local_parts and domains of arrays of addresses
//     (`ctx().rcpt_list.domains`).
//
// file() keeps the lists it loaded, per env, and reads a file again only
// when its modification time or size changed, so a rule may call it for
// every message.
func Define(env *vsl.Env) {
	for _, typ := range []string{"ip4", "ip6", "rg4", "rg6", "fqdn", "address", "regex", "identifier"} {
		env.Define(&vsl.Builtin{Name: typ, Fn: constructor(typ), Pure: true})
	}
	files := &fileCache{files: make(map[fileKey]*cachedFile)}
	env.Define(&vsl.Builtin{Name: "file", Fn: files.builtin})
	env.Define(&vsl.Builtin{Name: "code", Fn: codeBuiltin, Pure: true})

	for _, p := range predefinedCodes() {
		v := vsl.Host(&p.code)
		if p.v1 != "" {
			env.DefineConst(p.v1, v)
		}
		env.Define(&vsl.Builtin{
			Name: "code::" + p.v2,
			Pure: true,
			Fn: func(_ *vsl.Call, args []vsl.Value) (vsl.Value, error) {
				if len(args) != 0 {
					return vsl.Value{}, vsl.ErrNoMatch
				}
				return v, nil
			},
		})
	}

	nets := []vsl.Value{
		RangeValue(netip.MustParsePrefix("192.168.0.0/16")),
		RangeValue(netip.MustParsePrefix("172.16.0.0/12")),
		RangeValue(netip.MustParsePrefix("10.0.0.0/8")),
	}
	env.DefineConst("net_192", nets[0])
	env.DefineConst("net_172", nets[1])
	env.DefineConst("net_10", nets[2])
	g, err := NewGroup(nets)
	if err != nil {
		panic("object: the group of private ranges: " + err.Error()) // ranges always make a group
	}
	env.DefineConst("non_routable_net", vsl.Host(g))

	for _, name := range []string{"local_parts", "domains"} {
		env.Define(&vsl.Builtin{Name: name, Pure: true, Fn: func(_ *vsl.Call, args []vsl.Value) (vsl.Value, error) {
			if len(args) != 1 {
				return vsl.Value{}, vsl.ErrNoMatch
			}
			switch x := args[0]; x.Kind() {
			case vsl.KindArray:
				return addressParts(name, x.AsArray().Elems)
			case vsl.KindHost:
				if ha, ok := x.AsHost().(vsl.HostAttrs); ok {
					if v, found, err := ha.Attr(name); found {
						return v, err
					}
				}
			}
			return vsl.Value{}, vsl.ErrNoMatch
		}})
	}
}

// constructor returns the builtin building an object of type typ from a
// string.
func constructor(typ string) func(*vsl.Call, []vsl.Value) (vsl.Value, error) {
	return func(_ *vsl.Call, args []vsl.Value) (vsl.Value, error) {
		if len(args) != 1 || args[0].Kind() != vsl.KindString {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		return Parse(typ, args[0].AsString())
	}
}

// codeBuiltin is code(550, "5.7.1", "text"), code(550, "text"), and
// code(v) for anything ToCode reads.
func codeBuiltin(_ *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	var c *Code
	switch {
	case len(args) == 1:
		k := args[0].Kind()
		if k != vsl.KindString && k != vsl.KindMap && k != vsl.KindHost {
			return vsl.Value{}, vsl.ErrNoMatch
		}
		var err error
		if c, err = ToCode(args[0]); err != nil {
			return vsl.Value{}, err
		}
		return vsl.Host(c), nil
	case len(args) == 2 && args[0].Kind() == vsl.KindInt && args[1].Kind() == vsl.KindString:
		c = &Code{Code: int(args[0].AsInt()), Text: args[1].AsString()}
	case len(args) == 3 && args[0].Kind() == vsl.KindInt && args[1].Kind() == vsl.KindString && args[2].Kind() == vsl.KindString:
		c = &Code{Code: int(args[0].AsInt()), Enhanced: args[1].AsString(), Text: args[2].AsString()}
	default:
		return vsl.Value{}, vsl.ErrNoMatch
	}
	if int64(c.Code) != args[0].AsInt() {
		return vsl.Value{}, fmt.Errorf("reply code %d out of range", args[0].AsInt())
	}
	if err := c.check(); err != nil {
		return vsl.Value{}, err
	}
	return vsl.Host(c), nil
}

// fileCache holds the lists file() loaded, by path and type.
type fileCache struct {
	mu    sync.Mutex
	files map[fileKey]*cachedFile
}

type fileKey struct{ path, typ string }

type cachedFile struct {
	modTime time.Time
	size    int64
	value   vsl.Value
}

// maxCachedFiles bounds the cache, should a script compute its paths.
const maxCachedFiles = 64

// builtin is file(path, "type").
func (fc *fileCache) builtin(c *vsl.Call, args []vsl.Value) (vsl.Value, error) {
	if len(args) != 2 || args[0].Kind() != vsl.KindString || args[1].Kind() != vsl.KindString {
		return vsl.Value{}, vsl.ErrNoMatch
	}
	path := resolvePath(args[0].AsString(), c.Pos().File)
	return fc.load(path, args[1].AsString())
}

// load returns the list at path, reading it only when it is not cached or
// changed since.
func (fc *fileCache) load(path, typ string) (vsl.Value, error) {
	key := fileKey{path, typ}
	st, statErr := os.Stat(path)
	if statErr == nil {
		fc.mu.Lock()
		cf := fc.files[key]
		fc.mu.Unlock()
		if cf != nil && cf.modTime.Equal(st.ModTime()) && cf.size == st.Size() {
			return cf.value, nil
		}
	}
	f, err := LoadFile(path, typ)
	if err != nil {
		return vsl.Value{}, err
	}
	v := vsl.Host(f)
	if statErr == nil {
		fc.mu.Lock()
		if len(fc.files) >= maxCachedFiles {
			for k := range fc.files { // evict any one
				delete(fc.files, k)
				break
			}
		}
		fc.files[key] = &cachedFile{modTime: st.ModTime(), size: st.Size(), value: v}
		fc.mu.Unlock()
	}
	return v, nil
}
