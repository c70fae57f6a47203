"""Retrieval backends (BM25 on bm25s, dense on faiss, hybrid RRF, Lucene, the Boolean engine, PubMed and
ClinicalTrials.gov over HTTP).

Two protocols (:mod:`.base`): ``TextSearcher`` (BM25, dense, hybrid, Lucene) and ``BooleanSearcher`` (the
Boolean engine, PubMed, ClinicalTrials.gov). Index folders of every kind share one shape (:mod:`.folders`).

Every local backend ranks by score descending, then corpus row ascending, and its top k is exact under
that order, so k only cuts one ranking: see :mod:`.base`.
"""
