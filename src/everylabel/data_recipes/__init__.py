"""Data recipes of the default model: training records built from offline sources (WordNet,
Debian package lists, fortunes) and self-generated polarity texts. Not used by the library at run
time; `everylabel build-data` calls them (see recipes/README.md)."""
