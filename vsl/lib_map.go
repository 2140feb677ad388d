package vsl

// Object maps have value semantics like arrays. Their keys are listed in
// ascending order (as Rhai's BTreeMap does), so keys(), values() and
// printing are deterministic.

func addMapLib(l *libBuilder) {
	M := KindMap

	l.pure("len", mapLen, M)
	l.pure("is_empty", mapIsEmpty, M)
	l.pure("contains", mapContains, M)
	l.pure("get", mapGet, M)
	l.pure("keys", mapKeys, M)
	l.pure("values", mapValues, M)

	l.inPlace("set", mapSet, M)
	l.inPlace("remove", mapRemove, M)
	l.inPlace("clear", mapClear, M)
	l.inPlace("mixin", mapMixin, M)
	l.inPlace("fill_with", mapFillWith, M)
}

// keyArg returns the property name a string or char argument names.
func keyArg(v Value) (string, bool) { return textArg(v) }

func mapLen(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Int(int64(len(args[0].AsMap().M))), nil
}

func mapIsEmpty(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Bool(len(args[0].AsMap().M) == 0), nil
}

// contains(m, name): the map has a property of that name.
func mapContains(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	k, ok := keyArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	_, found := args[0].AsMap().M[k]
	return Bool(found), nil
}

// get(m, name): a copy of a property, or () when there is none.
func mapGet(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	k, ok := keyArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	return args[0].AsMap().M[k].Clone(), nil
}

// set(m, name, v): add or replace a property.
func mapSet(c *Call, args []Value) (Value, error) {
	if len(args) != 3 {
		return Value{}, ErrNoMatch
	}
	k, ok := keyArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	m := args[0].AsMap()
	if _, exists := m.M[k]; !exists {
		if err := c.CheckMap(len(m.M) + 1); err != nil {
			return Value{}, err
		}
	}
	m.M[k] = args[2].Clone()
	return Value{}, nil
}

// remove(m, name): remove a property and return it (() when there is none).
func mapRemove(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	k, ok := keyArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	m := args[0].AsMap()
	v := m.M[k]
	delete(m.M, k)
	return v, nil
}

func mapClear(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	clear(args[0].AsMap().M)
	return Value{}, nil
}

// keys(m): the property names, in ascending order.
func mapKeys(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return stringsArray(SortedKeys(args[0].AsMap())), nil
}

// values(m): copies of the property values, in the order of the keys.
func mapValues(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	m := args[0].AsMap()
	keys := SortedKeys(m)
	out := make([]Value, len(keys))
	for i, k := range keys {
		out[i] = m.M[k].Clone()
	}
	return NewArray(out), nil
}

// mixin(m, other): add every property of other, replacing those m has.
func mapMixin(c *Call, args []Value) (Value, error) {
	return merge(c, args, true)
}

// fill_with(m, other): add the properties of other that m does not have.
func mapFillWith(c *Call, args []Value) (Value, error) {
	return merge(c, args, false)
}

func merge(c *Call, args []Value, replace bool) (Value, error) {
	if len(args) != 2 || args[1].kind != KindMap {
		return Value{}, ErrNoMatch
	}
	m, other := args[0].AsMap(), args[1].AsMap()
	added := 0
	for k := range other.M {
		if _, exists := m.M[k]; !exists {
			added++
		}
	}
	if err := c.CheckMap(len(m.M) + added); err != nil {
		return Value{}, err
	}
	for k, v := range other.M {
		if _, exists := m.M[k]; replace || !exists {
			m.M[k] = v.Clone()
		}
	}
	return Value{}, nil
}
