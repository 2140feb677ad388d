package vsl

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strings in vSL are UTF-8; as in Rhai, lengths and positions count
// characters, not bytes. Functions that change a string (trim, pad,
// replace, ...) change the variable they are called on and return ().

func addStringLib(l *libBuilder) {
	S, C := KindString, KindChar

	l.pure("len", strLen, S)
	l.pure("bytes", strBytes, S)
	l.pure("is_empty", strIsEmpty, S)
	l.pure("contains", strContains, S)
	l.pure("starts_with", strStartsWith, S)
	l.pure("ends_with", strEndsWith, S)
	l.pure("index_of", strIndexOf, S)
	l.pure("sub_string", strSubString, S)
	l.pure("split", strSplit, S)
	l.pure("split_rev", strSplitRev, S)
	l.pure("to_chars", strToChars, S)
	l.pure("chars", strChars, S)
	l.pure("get", strGet, S)
	l.pure("to_upper", textToUpper, S, C)
	l.pure("to_lower", textToLower, S, C)

	l.inPlace("make_upper", textMakeUpper, S, C)
	l.inPlace("make_lower", textMakeLower, S, C)
	l.inPlace("trim", strTrim, S)
	l.inPlace("replace", strReplace, S)
	l.inPlace("pad", strPad, S)
	l.inPlace("append", strAppend, S)
	l.inPlace("remove", strRemove, S)
	l.inPlace("pop", strPop, S)
	l.inPlace("clear", strClear, S)
	l.inPlace("truncate", strTruncate, S)
	l.inPlace("crop", strCrop, S)
	l.inPlace("set", strSet, S)
}

func strLen(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Int(int64(utf8.RuneCountInString(args[0].AsString()))), nil
}

func strBytes(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Int(int64(len(args[0].AsString()))), nil
}

func strIsEmpty(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return Bool(args[0].n == 0), nil
}

func strContains(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	switch x := args[1]; x.kind {
	case KindString:
		return Bool(strings.Contains(s, x.AsString())), nil
	case KindChar:
		return Bool(strings.ContainsRune(s, x.AsChar())), nil
	}
	return Value{}, ErrNoMatch
}

func strStartsWith(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	switch x := args[1]; x.kind {
	case KindString:
		return Bool(strings.HasPrefix(s, x.AsString())), nil
	case KindChar:
		r, _ := utf8.DecodeRuneInString(s)
		return Bool(s != "" && r == x.AsChar()), nil
	}
	return Value{}, ErrNoMatch
}

func strEndsWith(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	switch x := args[1]; x.kind {
	case KindString:
		return Bool(strings.HasSuffix(s, x.AsString())), nil
	case KindChar:
		r, _ := utf8.DecodeLastRuneInString(s)
		return Bool(s != "" && r == x.AsChar()), nil
	}
	return Value{}, ErrNoMatch
}

// charOffset returns the byte offset of the i-th character of s (len(s)
// when s has i characters or fewer).
func charOffset(s string, i int) int {
	if i <= 0 {
		return 0
	}
	if i >= len(s) {
		return len(s)
	}
	if isASCII(s[:i]) {
		return i
	}
	for off := range s {
		if i == 0 {
			return off
		}
		i--
	}
	return len(s)
}

// charSlice returns the n characters of s from the off-th.
func charSlice(s string, off, n int) string {
	b := charOffset(s, off)
	rest := s[b:]
	return rest[:charOffset(rest, n)]
}

// index_of(s, find) and index_of(s, find, start): the character position
// of the first occurrence at or after start, or -1.
func strIndexOf(_ *Call, args []Value) (Value, error) {
	if len(args) < 2 || len(args) > 3 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	find, ok := textArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	from := 0
	if len(args) == 3 {
		start, ok := intArg(args[2])
		if !ok {
			return Value{}, ErrNoMatch
		}
		n := utf8.RuneCountInString(s)
		if start >= int64(n) && start > 0 {
			return Int(-1), nil
		}
		from = charOffset(s, absPos(start, n))
	}
	i := strings.Index(s[from:], find)
	if i < 0 {
		return Int(-1), nil
	}
	return Int(int64(utf8.RuneCountInString(s[:from+i]))), nil
}

// subStringArgs resolves the (start[, len]) or (range) arguments of
// sub_string, crop and chars against s: the first character and the
// number of characters.
func subStringArgs(s string, args []Value) (off, n int, ok bool) {
	count := utf8.RuneCountInString(s)
	switch len(args) {
	case 0:
		return 0, count, true
	case 1:
		if r := args[0].AsRange(); r != nil {
			start, length := rangeLen(r)
			off, n = offsetLen(count, start, length)
			return off, n, true
		}
		start, ok := intArg(args[0])
		if !ok {
			return 0, 0, false
		}
		off, n = offsetLen(count, start, int64(count))
		return off, n, true
	case 2:
		start, ok1 := intArg(args[0])
		length, ok2 := intArg(args[1])
		if !ok1 || !ok2 {
			return 0, 0, false
		}
		off, n = offsetLen(count, start, length)
		return off, n, true
	}
	return 0, 0, false
}

func strSubString(_ *Call, args []Value) (Value, error) {
	if len(args) < 2 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	off, n, ok := subStringArgs(s, args[1:])
	if !ok {
		return Value{}, ErrNoMatch
	}
	return String(charSlice(s, off, n)), nil
}

func strCrop(_ *Call, args []Value) (Value, error) {
	if len(args) < 2 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	off, n, ok := subStringArgs(s, args[1:])
	if !ok {
		return Value{}, ErrNoMatch
	}
	args[0] = String(charSlice(s, off, n))
	return Value{}, nil
}

func strToChars(c *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	return strChars(c, args)
}

// chars(s), chars(s, start[, len]), chars(s, range) and to_chars(s): the
// characters as an array.
func strChars(c *Call, args []Value) (Value, error) {
	s := args[0].AsString()
	off, n, ok := subStringArgs(s, args[1:])
	if !ok {
		return Value{}, ErrNoMatch
	}
	if err := c.CheckArray(n); err != nil {
		return Value{}, err
	}
	out := make([]Value, 0, n)
	for _, r := range charSlice(s, off, n) {
		out = append(out, Char(r))
	}
	return NewArray(out), nil
}

// split(s): by whitespace; split(s, pos): in two at a character position;
// split(s, delim[, segments]): by a string or char, into at most segments
// pieces.
func strSplit(c *Call, args []Value) (Value, error) {
	s := args[0].AsString()
	switch len(args) {
	case 1:
		fields := strings.Fields(s)
		if err := c.CheckArray(len(fields)); err != nil {
			return Value{}, err
		}
		return stringsArray(fields), nil
	case 2:
		if pos, ok := intArg(args[1]); ok {
			i := charOffset(s, absPos(pos, utf8.RuneCountInString(s)))
			return NewArray([]Value{String(s[:i]), String(s[i:])}), nil
		}
	}
	return splitBy(c, args, false)
}

// split_rev(s, delim[, segments]): split from the end.
func strSplitRev(c *Call, args []Value) (Value, error) {
	return splitBy(c, args, true)
}

func splitBy(c *Call, args []Value, rev bool) (Value, error) {
	if len(args) < 2 || len(args) > 3 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	delim, ok := textArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	limit := -1
	if len(args) == 3 {
		n, ok := intArg(args[2])
		if !ok {
			return Value{}, ErrNoMatch
		}
		limit = int(min(max(n, 1), int64(len(s)+2)))
	}
	pieces := countPieces(s, delim)
	if limit > 0 && limit < pieces {
		pieces = limit
	}
	if err := c.CheckArray(pieces); err != nil {
		return Value{}, err
	}
	out := make([]Value, 0, pieces)
	for _, p := range splitPieces(s, delim, limit, rev) {
		out = append(out, String(p))
	}
	return NewArray(out), nil
}

// countPieces returns how many pieces splitting s by delim gives. As in
// Rhai, an empty delimiter matches at every character boundary, the start
// and the end included.
func countPieces(s, delim string) int {
	if delim == "" {
		return utf8.RuneCountInString(s) + 2
	}
	return strings.Count(s, delim) + 1
}

// splitPieces splits s by delim into at most limit pieces (limit < 0: no
// limit), from the start or, with rev, from the end (the pieces are then
// listed from the last).
func splitPieces(s, delim string, limit int, rev bool) []string {
	if delim == "" {
		return splitEmpty(s, limit, rev)
	}
	if !rev {
		return strings.SplitN(s, delim, limit)
	}
	var out []string
	for limit < 0 || len(out) < limit-1 {
		i := strings.LastIndex(s, delim)
		if i < 0 {
			break
		}
		out = append(out, s[i+len(delim):])
		s = s[:i]
	}
	return append(out, s)
}

// splitEmpty splits s by the empty delimiter, which matches at every
// character boundary: "abc" gives "", "a", "b", "c", "".
func splitEmpty(s string, limit int, rev bool) []string {
	matches := make([]int, 0, len(s)+1)
	for i := range s {
		matches = append(matches, i)
	}
	matches = append(matches, len(s))
	if limit > 0 && len(matches) > limit-1 {
		if rev {
			matches = matches[len(matches)-(limit-1):]
		} else {
			matches = matches[:limit-1]
		}
	}
	out := make([]string, 0, len(matches)+1)
	if !rev {
		prev := 0
		for _, m := range matches {
			out = append(out, s[prev:m])
			prev = m
		}
		return append(out, s[prev:])
	}
	end := len(s)
	for i := len(matches) - 1; i >= 0; i-- {
		out = append(out, s[matches[i]:end])
		end = matches[i]
	}
	return append(out, s[:end])
}

func stringsArray(ss []string) Value {
	out := make([]Value, len(ss))
	for i, s := range ss {
		out[i] = String(s)
	}
	return NewArray(out)
}

// get(s, pos): the character at a position (negative counts from the
// end), or () when there is none.
func strGet(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	pos, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	i, ok := elemIndex(pos, utf8.RuneCountInString(s))
	if !ok {
		return Value{}, nil
	}
	r, _ := utf8.DecodeRuneInString(s[charOffset(s, i):])
	return Char(r), nil
}

// set(s, pos, char): replace the character at a position; nothing happens
// when there is none.
func strSet(_ *Call, args []Value) (Value, error) {
	if len(args) != 3 || args[2].kind != KindChar {
		return Value{}, ErrNoMatch
	}
	pos, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	i, ok := elemIndex(pos, utf8.RuneCountInString(s))
	if !ok {
		return Value{}, nil
	}
	b := charOffset(s, i)
	_, size := utf8.DecodeRuneInString(s[b:])
	args[0] = String(s[:b] + string(args[2].AsChar()) + s[b+size:])
	return Value{}, nil
}

func textToUpper(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	if args[0].kind == KindChar {
		return Char(unicode.ToUpper(args[0].AsChar())), nil
	}
	return String(strings.ToUpper(args[0].AsString())), nil
}

func textToLower(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	if args[0].kind == KindChar {
		return Char(unicode.ToLower(args[0].AsChar())), nil
	}
	return String(strings.ToLower(args[0].AsString())), nil
}

func textMakeUpper(c *Call, args []Value) (Value, error) {
	v, err := textToUpper(c, args)
	if err == nil {
		args[0] = v
	}
	return Value{}, err
}

func textMakeLower(c *Call, args []Value) (Value, error) {
	v, err := textToLower(c, args)
	if err == nil {
		args[0] = v
	}
	return Value{}, err
}

func strTrim(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	args[0] = String(strings.TrimSpace(args[0].AsString()))
	return Value{}, nil
}

// replace(s, find, with): every occurrence of a string or char.
func strReplace(c *Call, args []Value) (Value, error) {
	if len(args) != 3 {
		return Value{}, ErrNoMatch
	}
	find, ok1 := textArg(args[1])
	with, ok2 := textArg(args[2])
	if !ok1 || !ok2 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	if grow := int64(len(with) - len(find)); grow > 0 {
		matches := int64(countPieces(s, find) - 1)
		if err := c.CheckString(int(min(int64(len(s))+matches*grow, 1<<50))); err != nil {
			return Value{}, err
		}
	}
	args[0] = String(strings.ReplaceAll(s, find, with))
	return Value{}, nil
}

// pad(s, len, char|string): append copies of the padding until s has len
// characters (the last copy cut short if need be).
func strPad(c *Call, args []Value) (Value, error) {
	if len(args) != 3 {
		return Value{}, ErrNoMatch
	}
	target, ok1 := intArg(args[1])
	pad, ok2 := textArg(args[2])
	if !ok1 || !ok2 {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	have := utf8.RuneCountInString(s)
	if target <= int64(have) || pad == "" {
		return Value{}, nil
	}
	// A character is at most 4 bytes: check the worst case first.
	if err := c.CheckString(int(min(target, 1<<40))); err != nil {
		return Value{}, err
	}
	need := int(target) - have
	var b strings.Builder
	b.Grow(len(s) + need*utf8.UTFMax)
	b.WriteString(s)
	for need > 0 {
		for _, r := range pad {
			if need == 0 {
				break
			}
			b.WriteRune(r)
			need--
		}
	}
	if err := c.CheckString(b.Len()); err != nil {
		return Value{}, err
	}
	args[0] = String(b.String())
	return Value{}, nil
}

// append(s, x): add the text of any value (as print shows it).
func strAppend(c *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	s, t := args[0].AsString(), concatText(args[1])
	if err := c.CheckString(len(s) + len(t)); err != nil {
		return Value{}, err
	}
	args[0] = String(s + t)
	return Value{}, nil
}

// remove(s, x): remove every occurrence of a string or char.
func strRemove(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	find, ok := textArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	if find != "" {
		args[0] = String(strings.ReplaceAll(args[0].AsString(), find, ""))
	}
	return Value{}, nil
}

// pop(s): remove the last character and return it (() when empty);
// pop(s, n): remove the last n characters and return them as a string.
func strPop(_ *Call, args []Value) (Value, error) {
	s := args[0].AsString()
	switch len(args) {
	case 1:
		if s == "" {
			return Value{}, nil
		}
		r, size := utf8.DecodeLastRuneInString(s)
		args[0] = String(s[:len(s)-size])
		return Char(r), nil
	case 2:
		n, ok := intArg(args[1])
		if !ok {
			return Value{}, ErrNoMatch
		}
		if n <= 0 {
			return String(""), nil
		}
		count := utf8.RuneCountInString(s)
		if n >= int64(count) {
			args[0] = String("")
			return String(s), nil
		}
		i := charOffset(s, count-int(n))
		args[0] = String(s[:i])
		return String(s[i:]), nil
	}
	return Value{}, ErrNoMatch
}

func strClear(_ *Call, args []Value) (Value, error) {
	if len(args) != 1 {
		return Value{}, ErrNoMatch
	}
	args[0] = String("")
	return Value{}, nil
}

// truncate(s, n): keep the first n characters.
func strTruncate(_ *Call, args []Value) (Value, error) {
	if len(args) != 2 {
		return Value{}, ErrNoMatch
	}
	n, ok := intArg(args[1])
	if !ok {
		return Value{}, ErrNoMatch
	}
	s := args[0].AsString()
	args[0] = String(s[:charOffset(s, int(min(max(n, 0), int64(len(s)))))])
	return Value{}, nil
}
