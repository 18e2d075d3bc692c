"""mediaexport's domain: manifests, media work, storage, jobs. Importable without Kafka."""
