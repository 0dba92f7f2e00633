"""nascli.overrides: values written in Hydra's override grammar come back unchanged through Hydra's parser."""
from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from nascli.cli import quote_value as cli_quote_value
from nascli.overrides import hydra_value, merge_overrides, override_key, path_value, quote_value, quoted

PARSER = OverridesParser.create()
NB201 = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
GENOTYPE = "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2, 3])"
TEXTS = [NB201, GENOTYPE, "it's", 'say "hi"', "both ' and \"", "a\\b", "ends with \\", "C:\\runs\\", "\\'",
         "x\\\\'y", "seed=0/arch.json", "", "${not.resolved}", "a,b c"]


def parsed(text: str):
    return PARSER.parse_override(f"key={text}").value()


@pytest.mark.parametrize("text", TEXTS)
def test_every_quoting_reads_back_as_the_same_text(text):
    assert parsed(quote_value(text)) == text
    assert parsed(hydra_value(text)) == text
    assert parsed(quoted(text, '"')) == text
    assert parsed(path_value(text)) == text


def test_quote_value_picks_the_quote_and_keeps_quoted_text():
    assert quote_value(NB201) == f"'{NB201}'"
    assert quote_value("it's") == '"it\'s"'                      # single quote inside: double quotes
    assert quote_value("both ' and \"") == "'both \\' and \"'"   # both kinds: single quotes, ' escaped
    assert quote_value("ends with \\") == "'ends with \\\\'"       # a backslash before the closing quote doubles
    assert quote_value("a\\b") == "'a\\b'"                       # elsewhere it stays single
    assert quote_value("'already'") == "'already'" and quote_value('"already"') == '"already"'
    assert cli_quote_value is quote_value                        # cli.py uses this one


def test_hydra_value_writes_plain_data():
    assert hydra_value(None) == "null" and hydra_value(True) == "true" and hydra_value(False) == "false"
    assert hydra_value(3) == "3" and hydra_value(0.0025) == "0.0025" and hydra_value("3") == "'3'"
    assert hydra_value([1, 2.5, None, True]) == "[1,2.5,null,true]"
    assert hydra_value({"bn": "batch", "n": [1, "a b"]}) == "{bn:'batch',n:[1,'a b']}"
    assert parsed(hydra_value({"bn": "batch", "n": [1, "a b"]})) == {"bn": "batch", "n": [1, "a b"]}
    assert hydra_value("it's") == "'it\\'s'"


def test_path_value_is_bare_only_for_plainly_safe_paths():
    assert path_value("/tmp/out-1/run_2.json") == "/tmp/out-1/run_2.json"
    assert path_value("/tmp/search/seed=0") == "'/tmp/search/seed=0'"
    assert path_value("/tmp/my runs") == "'/tmp/my runs'"


def test_override_keys_and_merging():
    assert [override_key(o) for o in ("a.b=1", "+a.c=2", "++d=3", "~e", "~f.g=1")] == ["a.b", "a.c", "d", "e", "f.g"]
    assert merge_overrides(["a.b=1", "++c=2", "~d", "e=5"], ["c=3", "a.b=4"]) == ["~d", "e=5", "c=3", "a.b=4"]
    assert merge_overrides(["a=1"], []) == ["a=1"] and merge_overrides([], ["a=1"]) == ["a=1"]
