"""The preset dictionary a small entry table is deflated with (archive format 7 on).

The table of an archive of a few files is mostly its layout JSON (column names and widths, the
format and mode names, the archive's digest), which LZMA barely shrinks at that size; every
archive pays it. Primed with typical layouts and extras, deflate keeps mostly what differs: the
digest, the counts and the names. Large tables are compressed with LZMA as before
(cli/table.py chooses, and says which in the table's first byte).

These bytes are part of the format: never change them (tests/test_table.py pins their sha256).
The most typical layout comes last, where deflate's distances are shortest.
"""
from __future__ import annotations

TABLE_DICTIONARY = b"".join([
    b'[{"shape":[10000,32,32,3],"fortran_order":false,"fallback":{"runs":[0,3,6,3],"codecs":"PWJ","crc32":0}},'
    b'{"target":"../"},{"members":["x_train","x_test","y_train"]},{"shape":[60000,28,28],"fortran_order":false}]',
    b'{"columns":{"blob_length":["u4",4],"codec":["u1",1],"crc32":["u4",4],"format":["u1",1],"height":["u2",2],'
    b'"items":["u2",2],"kind":["u1",1],"mode":["u1",1],"mtime_delta":["i8",8],"name_rest":["u1",1],'
    b'"name_shared":["u1",1],"permissions":["u2",2],"scale":["u1",1],"size":["u8",8],"store":["u1",1],'
    b'"width":["u2",2]},"digest":"","entries":1,"extras":0,"formats":["BMP","BYTES","GIF","JPEG","LINK","NPY","NPZ",'
    b'"PPM","TIFF","WEBP"],"model_stream":{"items":1,"length":1,"offset":0},"modes":["","1","L","LA","RGBA"],'
    b'"names":1,"payload_length":1}',
    b'{"columns":{"blob_length":["u1",0],"codec":["u1",1],"crc32":["u1",0],"format":["u1",1],"height":["u1",1],'
    b'"items":["u1",1],"kind":["u1",1],"mode":["u1",1],"mtime_delta":["i8",8],"name_rest":["u1",1],'
    b'"name_shared":["u1",1],"permissions":["u2",2],"scale":["u1",1],"size":["u1",0],"store":["u1",1],'
    b'"width":["u1",1]},"digest":"","entries":1,"extras":44,"formats":["NPY"],'
    b'"model_stream":{"items":48,"length":6971,"offset":0},"modes":[""],"names":8,"payload_length":6971}',
    b'{"columns":{"blob_length":["u1",0],"codec":["u1",1],"crc32":["u1",0],"format":["u1",1],"height":["u2",2],'
    b'"items":["u1",1],"kind":["u1",1],"mode":["u1",1],"mtime_delta":["i8",8],"name_rest":["u1",1],'
    b'"name_shared":["u1",1],"permissions":["u2",2],"scale":["u1",1],"size":["u1",0],"store":["u1",1],'
    b'"width":["u2",2]},"digest":"","entries":1,"extras":0,"formats":["PNG"],'
    b'"model_stream":{"items":12,"length":274225,"offset":0},"modes":["","RGB"],"names":20,"payload_length":274225}',
])
