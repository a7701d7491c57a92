-- tus `concatenation`: a partial upload holds a byte range of a final
-- upload; the final lists its partials in file order and, once they are
-- in, its bytes are theirs (hashed once, in file order).
ALTER TABLE uploads ADD COLUMN concat TEXT;        -- NULL | 'partial' | 'final'
ALTER TABLE uploads ADD COLUMN concat_parts TEXT;  -- final: JSON array of partial ids, in order
ALTER TABLE uploads ADD COLUMN concat_final TEXT;  -- partial: the final that uses it

CREATE INDEX uploads_concat_final ON uploads(concat_final);
