package syntax

// Inspect walks the tree rooted at n in depth-first order, calling f for
// each node before its children. When f returns false, the children of that
// node are skipped. Nil nodes are not visited.
func Inspect(n Node, f func(Node) bool) {
	if n == nil || isNilNode(n) || !f(n) {
		return
	}
	switch n := n.(type) {
	case *LetStmt:
		inspectExpr(n.Value, f)
	case *ExprStmt:
		inspectExpr(n.X, f)
	case *AssignStmt:
		inspectExpr(n.LHS, f)
		inspectExpr(n.RHS, f)
	case *FnDecl:
		Inspect(n.Body, f)
	case *ImportStmt:
		inspectExpr(n.Path, f)
	case *ReturnStmt:
		inspectExpr(n.Value, f)
	case *BreakStmt:
		inspectExpr(n.Value, f)
	case *ThrowStmt:
		inspectExpr(n.Value, f)
	case *ObjectDecl:
		inspectExpr(n.Value, f)
	case *ServiceDecl:
		inspectExpr(n.Value, f)
	case *InterpString:
		for _, p := range n.Parts {
			inspectExpr(p, f)
		}
	case *ArrayExpr:
		for _, e := range n.Elems {
			inspectExpr(e, f)
		}
	case *MapExpr:
		for _, e := range n.Entries {
			inspectExpr(e.Value, f)
		}
	case *UnaryExpr:
		inspectExpr(n.X, f)
	case *BinaryExpr:
		inspectExpr(n.X, f)
		inspectExpr(n.Y, f)
	case *RangeExpr:
		inspectExpr(n.Lo, f)
		inspectExpr(n.Hi, f)
	case *CallExpr:
		inspectExpr(n.Fn, f)
		for _, a := range n.Args {
			inspectExpr(a, f)
		}
	case *MethodCallExpr:
		inspectExpr(n.Recv, f)
		for _, a := range n.Args {
			inspectExpr(a, f)
		}
	case *DotExpr:
		inspectExpr(n.X, f)
	case *IndexExpr:
		inspectExpr(n.X, f)
		inspectExpr(n.Index, f)
	case *ClosureExpr:
		inspectExpr(n.Body, f)
	case *BlockExpr:
		for _, s := range n.Stmts {
			Inspect(s, f)
		}
	case *IfExpr:
		inspectExpr(n.Cond, f)
		Inspect(n.Then, f)
		inspectExpr(n.Else, f)
	case *SwitchExpr:
		inspectExpr(n.X, f)
		for _, c := range n.Cases {
			for _, v := range c.Values {
				inspectExpr(v, f)
			}
			inspectExpr(c.Cond, f)
			inspectExpr(c.Body, f)
		}
	case *WhileExpr:
		inspectExpr(n.Cond, f)
		Inspect(n.Body, f)
	case *LoopExpr:
		Inspect(n.Body, f)
	case *DoExpr:
		Inspect(n.Body, f)
		inspectExpr(n.Cond, f)
	case *ForExpr:
		inspectExpr(n.Iter, f)
		Inspect(n.Body, f)
	case *TryExpr:
		Inspect(n.Body, f)
		Inspect(n.Catch, f)
	case *DirectiveExpr:
		inspectExpr(n.Service, f)
		inspectExpr(n.Body, f)
	}
}

// InspectFile calls Inspect on every top-level statement of file.
func InspectFile(file *File, f func(Node) bool) {
	for _, s := range file.Stmts {
		Inspect(s, f)
	}
}

func inspectExpr(e Expr, f func(Node) bool) {
	if e != nil {
		Inspect(e, f)
	}
}

// isNilNode reports whether n is a typed nil pointer (an absent optional
// child such as an if without else).
func isNilNode(n Node) bool {
	switch n := n.(type) {
	case *BlockExpr:
		return n == nil
	case *IfExpr:
		return n == nil
	}
	return false
}
