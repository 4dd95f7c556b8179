"""Anonymized summary exports: what an organisation may publish about the testimony it
holds (invariant 7: exports never re-identify).

An export holds only counts with small-cell suppression (:mod:`.suppression`, counted in
SQL by :mod:`.counts`) and excerpts that a reviewer edited, checked for personal data
(:mod:`.pii`) and approved (:mod:`.excerpts`); :mod:`.build` writes the files and
:mod:`.signing` signs their manifest with the instance's export key.
"""
