-- musehub schema 9: large objects stored whole. Never edit once released.
--
-- A multi-chunk object's bytes are one file, `objects/<2 hex>/<object_id hex>` in the block
-- directory, written once as they arrive, instead of one file per 1 MiB leaf. Its leaves
-- stay blocks with rows of their own (every IPFS path asks for them by CID), but a leaf's
-- row now says where its bytes are: `object_id` and `offset` name a range of that file
-- (`size` bytes). A row with neither `data` nor `object_id` is a file of its own as before
-- (blocks that came alone from the network, and leaves not converted yet).
ALTER TABLE objects ADD COLUMN whole INTEGER NOT NULL DEFAULT 0;  -- 1: the object file exists
ALTER TABLE blocks ADD COLUMN object_id BLOB;
ALTER TABLE blocks ADD COLUMN offset INTEGER;

-- Objects recorded before this schema are converted once, by the server at start (resumable:
-- one object at a time, each marked `whole` when its file is durable). The row is deleted
-- when every object is converted and the leaf files are gone.
INSERT INTO pending_backfills (name) VALUES ('whole_objects');
