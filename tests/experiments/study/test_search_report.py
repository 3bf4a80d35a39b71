"""SEARCH.md from hand-made outcomes: a table per round, each variant against its own base at the
update both reached (a longer run is not ranked by a later probe), what the longer runs bought."""
from experiments.study.curves import ProbePoint
from experiments.study.plan import search_plan
from experiments.study.runner import StudyOutcome
from experiments.study.search_report import probe_at, rounds, write_search


def curve(*accs, every=100):
    return [ProbePoint(i * every, a, 1) for i, a in enumerate(accs)]


def rows_of(text, heading):
    """The variant names of the table under ``heading``, in order."""
    part = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return [line.split(" | ")[0][2:] for line in part.splitlines()
            if line.startswith("| ") and not line.startswith("| variant")]


def test_rounds_group_variants_under_their_base():
    plan = search_plan()
    groups = rounds(list(plan.search))
    assert list(groups) == ["base", "gumbel0.999", "g999+codebook2x64"]
    names = {base: [v.name for v in r.members] for base, r in groups.items()}
    assert names["base"][0] == "base" and "gumbel0.999" in names["base"]
    assert names["gumbel0.999"][0] == "gumbel0.999"
    assert set(names["gumbel0.999"][1:]) >= {"long4000", "g999+lr5e-4+mask0.5x5"}
    assert names["g999+codebook2x64"] == ["g999+codebook2x64", "codebook2x64_long2000"]
    # each round knows what its start changed: the first round's start changed nothing
    assert [None if r.parent is None else r.parent.name for r in groups.values()] == \
        [None, "base", "gumbel0.999"]


def test_probe_at_takes_the_last_point_not_after():
    points = curve(0.4, 0.5, 0.6)
    assert probe_at(points, 150).acc == 0.5
    assert probe_at(points, 200).acc == 0.6
    assert probe_at([ProbePoint(100, 0.5, 1)], 50) is None


def test_search_md_ranks_each_round_at_the_shared_update(tmp_path):
    plan = search_plan()
    o = StudyOutcome(plan)
    o.curves = {"base": curve(0.40, 0.42, 0.45, every=400),
                "mask0.5x5": curve(0.40, 0.50, 0.55, every=400),
                "labelled_only": curve(0.40, 0.41, 0.41, every=400), "lr2e-3": [],
                "gumbel0.999": curve(0.40, 0.44, 0.47, every=400),
                "g999+lr5e-4": curve(0.40, 0.45, 0.48, every=400),
                # the long run is best at its end but worst at update 800: ranked last in its round
                "long4000": curve(0.40, 0.41, 0.43, 0.50, 0.60, 0.70, every=800)}
    end = o.curves["long4000"][-1]
    o.curves["long4000"][-1] = ProbePoint(end.update, end.acc, 1, {"conv": 0.45, "layer0": 0.70, "layer1": 0.62})
    o.runs = {"base": {"wall_s": 500.0, "last_dev_acc": 0.2}, "long4000": {"wall_s": 3600.0}}
    o.wall = {"search": 4100.0}
    text = write_search(o, tmp_path)
    assert rows_of(text, "## Round around `base`") == ["mask0.5x5", "gumbel0.999", "base", "labelled_only"]
    assert rows_of(text, "## Round around `gumbel0.999`") == ["g999+lr5e-4", "gumbel0.999", "long4000"]
    assert "| mask0.5x5 | `model.overrides.mask_prob=0.5`, `model.overrides.mask_length=5` | 800 | 40.0 % | " \
           "55.0 % | +10.0 | 55.0 % (800) |" in text
    # within round 2 the comparison is with gumbel0.999, at update 800 for the long run too
    assert "| g999+lr5e-4 | `optim.lr=5.0e-4` | 800 | 40.0 % | 48.0 % | +1.0 |" in text
    assert "| gumbel0.999 | this round's start: `model.overrides.latent_temp=[2.0,0.5,0.999]` | 800 |" in text
    assert "| long4000 | 4,000 updates (gumbel0.999: 800) | 4,000 | 40.0 % | 41.0 % | -6.0 | 70.0 % (4,000) |" in text
    assert "Not run yet: lr5e-4, lr2e-3," in text and "| lr2e-3 |" not in text
    # base is the recipe as searched, pinned (SEARCH_BASE); a variant shows only its own change
    assert "| labelled_only | no unlabelled speech |" in text
    assert "| base | the tiny recipe with `model.overrides.latent_temp=[2.0,0.5,0.99]`, " \
           "`model.overrides.latent_vars=320` |" in text
    assert "- **long4000**: 40.0 % at update 0, 41.0 % at 800 (gumbel0.999's length), 70.0 % at 4,000; " \
           "over its last half +12.50 points per 1,000 updates; per layer at the end: conv 45.0 %, layer0 70.0 %, " \
           "layer1 62.0 %." in text
    assert "summed over the variants shown (two ran side by side): 1:08:20." in text
    assert (tmp_path / "SEARCH.md").is_file() and (tmp_path / "search_curves.png").is_file()


def test_a_round_without_probes_says_so(tmp_path):
    o = StudyOutcome(search_plan())
    text = write_search(o, tmp_path)
    assert "No variant around `base` has a probe yet." in text
