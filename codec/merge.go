package codec

import "fmt"

// Merge widens s to hold every column of o, as Accept would for a change
// declaring o's columns: missing columns are added as nullable and
// narrower types are widened. Writers use it to fold a table's committed
// schema (which another writer may have evolved) into their own before
// committing, so no writer's commit ever drops another's columns. On error
// s is unchanged.
func (s *Schema) Merge(o *Schema) error {
	next := s.Clone()
	for _, c := range o.cols {
		if err := next.acceptDeclared(c); err != nil {
			return fmt.Errorf("column %q: %w", c.Name, err)
		}
	}
	next.kafka = next.kafka || o.kafka
	*s = *next
	return nil
}
