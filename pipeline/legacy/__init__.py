"""The legacy ``/export`` contract (/work/shared/api/export-api.md), both directions.

- body.py      the POST body's typed definition (ExportBody), which the OpenAPI shows
- request.py   a POST body → an ExportRequest; a bad field named as the body calls it
- storage.py   storage_info (or the deprecated S3Bucket) → the archive's location
- values.py    JSON value helpers shared by the two (type names, base64 JSON)
- paths.py     a job's output keys and the ImagePath/VideoPath the answers write
- response.py  a job's status or an error → the answer (one Struct per kind), TimeWait
- examples.py  the contract's example bodies (the OpenAPI's examples, the tests' bodies)

Callers import from the module that defines a name; importing the package loads nothing
else, so schemas/request.py can use paths.py without pulling the request side in.
"""
