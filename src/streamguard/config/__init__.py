"""Reading conf/: the preset resolver (``sg.preset``) and the settings that shape pipelines (seeds, ensembled tracks).

May import: runtime. Plain Python and YAML; no Kedro.
"""
