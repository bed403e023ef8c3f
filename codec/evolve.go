package codec

// Evolved returns the schema ch needs without changing s: nil when ch fits
// s as it is, otherwise a copy of s evolved as Accept would evolve it. An
// uncoercible value is the error Accept returns. Callers use it to decide
// on a change's schema before they know the change is kept, and to apply
// the evolution only once it is.
func (s *Schema) Evolved(ch *Change) (*Schema, error) {
	if s.fits(ch) {
		return nil, nil
	}
	next := s.Clone()
	evolved, err := next.Accept(ch)
	if err != nil {
		return nil, err
	}
	if !evolved {
		return nil, nil
	}
	return next, nil
}
