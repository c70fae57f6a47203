"""Retrieval backends (BM25 on bm25s, dense on faiss, hybrid RRF, Lucene, the Boolean engine, PubMed and
ClinicalTrials.gov over HTTP).

Every local backend ranks by score descending, then corpus row ascending, and its top k is exact under
that order, so k only cuts one ranking: see :mod:`.base`.
"""
