package engine

// ValueTemplate is a named value: a constant, or a template that keeps the
// expression's type when it is exactly one {{ expr }}.
type ValueTemplate struct {
	Name     string
	tpl      *Template
	constant any
}

// Values is an ordered list of named values.
type Values []ValueTemplate

// Eval evaluates one value.
func (t *Turn) EvalValue(v *ValueTemplate) (any, error) {
	if v.tpl == nil {
		return v.constant, nil
	}
	return t.Value(v.tpl)
}

// Map evaluates values into a new map.
func (t *Turn) Map(vs Values) (map[string]any, error) {
	m := make(map[string]any, len(vs))
	for i := range vs {
		v, err := t.EvalValue(&vs[i])
		if err != nil {
			return nil, err
		}
		m[vs[i].Name] = v
	}
	return m, nil
}
