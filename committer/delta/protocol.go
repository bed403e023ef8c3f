package delta

import (
	"fmt"
	"slices"
	"strings"

	"github.com/evodb/sink/committer"
)

// Table features (PROTOCOL.md "Table Features") this committer knows.
const (
	featureDeletionVectors = "deletionVectors"
	featureAppendOnly      = "appendOnly"
	featureInvariants      = "invariants"
)

// Table properties this committer reads or sets.
const (
	propEnableDeletionVectors = "delta.enableDeletionVectors"
	propAppendOnly            = "delta.appendOnly"
)

// newProtocol returns the protocol a table this Table creates gets: reader
// 1 / writer 2, or with DeleteRows reader 3 / writer 7 with the
// deletionVectors feature, which every reader of the table must know to
// skip deleted rows. The writer features also list invariants and
// appendOnly, the features of writer version 2, as Spark lists them: Spark
// takes a NOT NULL column (the sink's _op, _lsn, _ts) for an invariant,
// and refuses to read a table whose metadata uses a feature its protocol
// does not list. The committer honours both (Table.writable).
func (t *Table) newProtocol() *Protocol {
	if !t.opts.DeleteRows {
		return &Protocol{MinReaderVersion: readerVersion, MinWriterVersion: writerVersion}
	}
	return &Protocol{
		MinReaderVersion: 3,
		MinWriterVersion: 7,
		ReaderFeatures:   []string{featureDeletionVectors},
		WriterFeatures:   []string{featureDeletionVectors, featureInvariants, featureAppendOnly},
	}
}

// newConfiguration returns the configuration a table this Table creates
// gets: conf, with deletion vectors enabled when the Table deletes rows
// (writers may only write vectors to a table that enables them).
func (t *Table) newConfiguration(conf map[string]string) map[string]string {
	if !t.opts.DeleteRows {
		return conf
	}
	out := make(map[string]string, len(conf)+1)
	for k, v := range conf {
		out[k] = v
	}
	out[propEnableDeletionVectors] = "true"
	return out
}

// writable returns why this Table must not commit to a table of protocol p
// and metadata md, or nil.
//
// Tables of reader 1 / writer 2 are written by every Table. A reader 3 /
// writer 7 table is written only by a Table opened with DeleteRows, and
// only if it needs no feature but deletionVectors and the two legacy
// features Spark lists with it, which this committer honours: appendOnly
// (removals and deletions are refused while delta.appendOnly is true) and
// invariants (refused if a column has one, since the committer does not
// evaluate them). A Table without DeleteRows refuses such tables because a
// writer that rewrites files whole, such as compaction, would bring deleted
// rows back.
func (t *Table) writable(p Protocol, md metadata) error {
	if p.MinReaderVersion <= readerVersion && p.MinWriterVersion <= writerVersion {
		return nil
	}
	if !t.opts.DeleteRows {
		return fmt.Errorf("table requires protocol (%d, %d) with features %v / %v, which only a writer that deletes rows (a mirror table's) may write: %w",
			p.MinReaderVersion, p.MinWriterVersion, p.ReaderFeatures, p.WriterFeatures, ErrUnsupportedProtocol)
	}
	if p.MinReaderVersion > 3 || p.MinWriterVersion > 7 {
		return fmt.Errorf("table requires protocol (%d, %d): %w", p.MinReaderVersion, p.MinWriterVersion, ErrUnsupportedProtocol)
	}
	for _, f := range p.ReaderFeatures {
		if f != featureDeletionVectors {
			return fmt.Errorf("table requires reader feature %s, which this committer does not support: %w", f, ErrUnsupportedProtocol)
		}
	}
	for _, f := range p.WriterFeatures {
		switch f {
		case featureDeletionVectors, featureAppendOnly:
		case featureInvariants:
			if strings.Contains(md.SchemaString, `"delta.invariants"`) {
				return fmt.Errorf("table has column invariants, which this committer does not check: %w", ErrUnsupportedProtocol)
			}
		default:
			return fmt.Errorf("table requires writer feature %s, which this committer does not support: %w", f, ErrUnsupportedProtocol)
		}
	}
	return nil
}

// checkChanges refuses c on a table of protocol p and metadata md if it
// removes files of an append-only table, or deletes rows of a table that
// does not allow deletion vectors.
func (t *Table) checkChanges(c *committer.Commit, p Protocol, md metadata) error {
	if md.Configuration[propAppendOnly] == "true" && (len(c.Removes) > 0 || len(c.Deletes) > 0) {
		return fmt.Errorf("table is append-only (%s=true): it refuses removals and deletions", propAppendOnly)
	}
	if len(c.Deletes) == 0 {
		return nil
	}
	if !slices.Contains(p.ReaderFeatures, featureDeletionVectors) || !slices.Contains(p.WriterFeatures, featureDeletionVectors) {
		return fmt.Errorf("commit deletes rows, but the table's protocol (%d, %d) does not have the %s feature; delete rows only from a table created by a writer that deletes rows",
			p.MinReaderVersion, p.MinWriterVersion, featureDeletionVectors)
	}
	if md.Configuration[propEnableDeletionVectors] != "true" {
		return fmt.Errorf("commit deletes rows, but the table does not enable deletion vectors (%s=true)", propEnableDeletionVectors)
	}
	return nil
}
