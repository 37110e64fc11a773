"""The Go-template subset of --format: what docker users write, printed as Go prints it."""

from __future__ import annotations

import pytest

from clients.cli.gotemplate import Fields, Template, TemplateError

DATA = {
    "Name": "/web", "Id": "abc", "State": {"Status": "running", "Pid": 42, "Running": True},
    "Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}, "Cmd": None},
    "Mounts": [{"Source": "/h", "Destination": "/c"}, {"Source": "/x", "Destination": "/y"}],
    "Memory": 67108864, "Ratio": 1000000.0, "Half": 0.5, "Empty": [],
}


@pytest.mark.parametrize(("text", "want"), [
    ("{{.Name}}", "/web"),
    ("{{.State.Status}} {{.State.Pid}} {{.State.Running}}", "running 42 true"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[a:1 b:2]"),
    ("{{.Config.Cmd}}", "<no value>"),
    ("{{.Nope}}", "<no value>"),  # a map key that is not there
    ("{{.Memory}} {{.Ratio}} {{.Half}}", "67108864 1e+06 0.5"),
    ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
    ("{{.Config.Env | json}}", '["A=1","B=2"]'),
    ("{{json .Config.Cmd}}", "null"),
    ("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/h:/c /x:/y "),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .Empty}}a{{else if .Name}}b{{else}}c{{end}}!", "b!"),
    ("{{with .State}}{{.Pid}}{{end}}", "42"),
    ('{{index .Config.Labels "a"}}', "1"),
    ('{{join .Config.Env ","}}', "A=1,B=2"),
    ("{{upper .State.Status}} {{len .Mounts}}", "RUNNING 2"),
    ('{{printf "%s-%d" .Name .State.Pid}}', "/web-42"),
    ("{{- .Id -}}  \n", "abc"),
    ("a {{- .Id}}", "aabc"),
    ('{{if eq .State.Status "running"}}yes{{end}}', "yes"),
    ("{{(index .Mounts 1).Source}}", "/x"),
    ("{{$.Id}}{{range .Mounts}}{{$.Id}}{{end}}", "abcabcabc"),
])
def test_render(text: str, want: str) -> None:
    assert Template(text).render(DATA) == want


def test_a_struct_field_it_lacks_is_an_error() -> None:
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        Template("{{.Nope}}").render(Fields(ID="x"))


@pytest.mark.parametrize("text", ["{{.Name", "{{range .Mounts}}", "{{end}}", "{{nofunc .X}}",
                                  '{{"abc}}'])
def test_bad_templates(text: str) -> None:
    with pytest.raises(TemplateError):
        Template(text).render(DATA)
