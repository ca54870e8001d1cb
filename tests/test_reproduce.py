"""Tests for mlsr_tf.evaluation.reproduce: configs, writers, a tiny end-to-end table, the tool."""

import csv
import dataclasses
import io
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.evaluation import reproduce
from mlsr_tf.data import image_io
from mlsr_tf.data import synthetic

REPO = paths.REPO_ROOT


def _fake_root(tmp_path, count=3, size=48):
  """A data root with Set5 and Urban100 of synthetic images, and a train folder."""
  for name in ("Set5", "Urban100"):
    folder = tmp_path / "datasets" / name / "HR"
    folder.mkdir(parents=True)
    for i in range(count):
      image_io.write_png(folder / f"img{i + 1:03d}.png", synthetic.demo_image(size, size + 4, i))
  train = tmp_path / "train"
  train.mkdir()
  for i in range(2):
    image_io.write_png(train / f"t{i}.png", synthetic.demo_image(64, 64, 10 + i))
  return tmp_path


def _tiny_weights(tmp_path):
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = registry.build_model("tiny", scale=2, channels=3)
  path = tmp_path / "tiny.weights.h5"
  model.save_weights(str(path))
  return str(path)


def _tiny_config(root, weights):
  return reproduce.TableConfig(
      table=5, preset="cpu", caption="tiny test table", model="tiny", weights=weights,
      image_sets=(reproduce.ImageSet("Set5"), reproduce.ImageSet("Urban100", 2, 3)),
      crop=32, degradation="random5x5_test", alpha=0.05, curve_steps=(0, 1, 3),
      zssr=dict(max_iters=4, min_iters=1, crop_size=8, filters=4, num_layers=3,
                run_test_every=2, policy_check_every=2, self_ensemble=False),
      data_root=str(root),
      meta_runs=(reproduce.MetaRun("m", str(root / "train"), degradation="random5x5",
                                   patch=16, batch=2, inner_steps=1, iterations=2),),
      methods=(reproduce.Method("Bicubic", "bicubic"), reproduce.Method("Net", "base"),
               reproduce.Method("Net-FT", "finetune", (0, 2)),
               reproduce.Method("Net-ML", "meta", (0, 2), "m"),
               reproduce.Method("ZSSR", "zssr")))


@pytest.mark.parametrize("table", reproduce.TABLES)
@pytest.mark.parametrize("preset", reproduce.PRESETS)
def test_predefined_configs_validate(table, preset):
  if preset == "cpu-val" and table != 5:
    with pytest.raises(ValueError, match=f"table 5 only, got table {table}"):
      reproduce.table_config(table, preset)
    return
  config = reproduce.table_config(table, preset)
  config.validate()
  json.dumps(config.to_json())
  assert config.table == table and config.caption
  if preset == "cpu":
    assert "NOT paper scale" in config.caption
  elif preset == "paper":
    assert config.crop == 0 and all(s.last == 0 or s.name == "Urban100"
                                    for s in config.image_sets)
  elif preset == "cpu-val":
    assert config.crop == 0 and config.degradation == "random5x5_validation"
  else:  # cpu-full: whole images, at least 40 of the large sets (Table 5: 20, issue 13).
    least = 20 if table == 5 else 40
    assert config.crop == 0 and all(s.last == 0 or s.last - s.first + 1 >= least
                                    for s in config.image_sets)


def test_cpu_full_configs_are_issue_12s_tables():
  t3, t4 = reproduce.table_config(3, "cpu-full"), reproduce.table_config(4, "cpu-full")
  assert [s.label for s in t3.image_sets] == ["Set5", "Set14", "B100[001-040]",
                                              "Urban100[001-040]"]
  assert [s.label for s in t4.image_sets] == ["Urban100[001-040]"]
  for config in (t3, t4):
    assert config.weights == reproduce.STAGE1_WEIGHTS and config.model == "idn"
    for method in config.methods:
      if method.kind in reproduce.ADAPTING_KINDS:
        assert method.steps == (0, 5, 20, 100)
  protocol = [m for m in t3.methods if m.kind == "idn_protocol"][0]
  assert protocol.model == "idn_caffe" and protocol.alpha == 0.1
  urban = [r for r in t4.meta_runs if r.name == "recipe_urban100"][0]
  assert (urban.data.first, urban.data.last) == (51, 100)
  assert [v.label for v in urban.validation] == ["Set5", "Urban100[041-050]"]
  assert urban.learn_step_sizes and urban.anchor_data == "train291" and urban.alpha == 0.3
  # Table 4 reuses Table 3's train291 run (the same name, the same settings).
  assert [r for r in t4.meta_runs if r.name == "recipe_train291"] == list(t3.meta_runs)


def test_cpu_full_table_5_is_issue_13s_table():
  t5 = reproduce.table_config(5, "cpu-full")
  assert t5.weights == reproduce.BLUR_WEIGHTS and t5.degradation == "random5x5_test"
  assert [s.label for s in t5.image_sets] == ["Set5", "Set14", "B100[001-020]",
                                              "Urban100[001-020]"]
  finetunes = [m for m in t5.methods if m.kind == "finetune"]
  assert {m.optimizer for m in finetunes} == {"sgd", "adam"}
  assert all(350 in m.steps for m in finetunes) and 350 in t5.curve_steps
  run = t5.meta_runs[0]
  assert (run.degradation, run.mixture_weights, run.sigma_max) == ("mixed", "0,1,1", 4.0)
  assert run.anchor_degradation == "mixed" and run.learn_step_sizes
  assert t5.zssr == {}  # ZSSR's own full budget.
  meta = reproduce.meta_train_config(t5, run, pathlib.Path("/tmp/unused"))
  assert (meta.anchor_degradation, meta.mixture_weights, meta.alpha) == ("mixed", "0,1,1", 0.3)
  meta.validate()
  stage1 = [m for m in finetunes if m.weights == reproduce.STAGE1_WEIGHTS]
  assert {m.optimizer for m in stage1} == {"sgd", "adam"}


def test_adam_on_the_meta_trained_network_uses_its_own_rate_not_the_sgd_step_sizes():
  t5 = reproduce.table_config(5, "cpu-full")
  by_label = {m.label: m for m in t5.methods}
  weights = {"recipe_kernels": str(REPO / "results" / "meta_runs" / "recipe_kernels"
                                   / "model.weights.h5")}
  keys = {label: reproduce._method_runner(  # pylint: disable=protected-access
      t5, by_label[label], weights, {}, print, build=False)[0]
          for label in ("IDN-ML (kernels)", "IDN-ML (kernels) + Adam")}
  sgd, adam = keys["IDN-ML (kernels)"], keys["IDN-ML (kernels) + Adam"]
  assert sgd["alpha"] is None and "step_sizes_sha256" in sgd
  assert adam["alpha"] == 1e-4 and "step_sizes_sha256" not in adam
  assert adam["weights_sha256"] == sgd["weights_sha256"]  # The same network.
  with pytest.raises(ValueError, match="Adam needs its own learning rate.*alpha=None"):
    dataclasses.replace(t5, methods=(reproduce.Method(
        "x", "meta", (0, 5), "recipe_kernels", optimizer="adam"),)).validate()


def test_the_shipped_blur_model_has_its_own_table_5_row_with_a_shorter_curve():
  t5 = reproduce.table_config(5, "cpu-full")
  by_label = {m.label: m for m in t5.methods}
  shipped = by_label["IDN-ML (shipped idn_x2_blur)"]
  assert (shipped.kind, shipped.meta_run, shipped.weights) == (
      "meta", "", reproduce.SHIPPED_BLUR_WEIGHTS)
  weights = {"recipe_kernels": str(REPO / "results" / "meta_runs" / "recipe_kernels"
                                   / "model.weights.h5")}
  keys = {label: reproduce._method_runner(  # pylint: disable=protected-access
      t5, by_label[label], weights, {}, print, build=False)[0]
          for label in ("IDN-ML (kernels)", "IDN-ML (shipped idn_x2_blur)")}
  from mlsr_tf import pretrained  # pylint: disable=g-import-not-at-top
  ship = keys["IDN-ML (shipped idn_x2_blur)"]
  assert ship["weights_sha256"] == pretrained.sha256_of(
      REPO / "pretrained" / "idn_x2_blur.weights.h5")
  assert ship["step_sizes_sha256"] == pretrained.sha256_of(
      REPO / "pretrained" / "idn_x2_blur.step_sizes.json")
  assert ship["weights_sha256"] != keys["IDN-ML (kernels)"]["weights_sha256"]
  assert max(ship["reads"]) == 100 and max(keys["IDN-ML (kernels)"]["reads"]) == 350


@pytest.mark.parametrize("session, weights", reproduce.EARLIER_BLUR_WEIGHTS)
def test_the_blur_models_shipped_before_keep_their_table_5_rows_and_scores(session, weights):
  """Sessions 31, 32 and 33 replaced idn_x2_blur; the ones shipped in sessions 26-30, 31 and 32
  keep their rows (their files in results/meta_runs/fixed_alpha_s26, anchor_s31 and
  anchor010_s32), and the scores committed for them still match their fingerprints, so
  ``--cached_only`` renders them without recomputing."""
  t5 = reproduce.table_config(5, "cpu-full")
  by_label = {m.label: m for m in t5.methods}
  before = by_label[f"IDN-ML (idn_x2_blur, session {session})"]
  assert before.weights == weights
  assert before.max_curve_step == 100
  fingerprint = reproduce._method_runner(  # pylint: disable=protected-access
      t5, before, {}, {}, print, build=False)[0]
  from mlsr_tf import pretrained  # pylint: disable=g-import-not-at-top
  assert fingerprint["weights_sha256"] != pretrained.sha256_of(
      REPO / "pretrained" / "idn_x2_blur.weights.h5")
  partial = REPO / "results" / "table5" / "cpu-full" / "partial"
  slug = reproduce._slug  # pylint: disable=protected-access
  for image_set in t5.image_sets:
    cache = reproduce.ImageCache(
        partial / f"IDN-ML__idn_x2_blur__session_{session}__{slug(image_set.label)}.jsonl",
        dict(fingerprint, set=image_set.label))
    count = {"Set5": 5, "Set14": 14}.get(image_set.label, image_set.last - image_set.first + 1)
    assert len(cache.entries) == count, image_set.label
    assert all(set(e["psnr"]) >= {0, 5, 20, 100} for e in cache.entries.values())


def test_new_method_fields_at_their_default_keep_old_cache_keys():
  method_fields = reproduce._method_fields  # pylint: disable=protected-access
  fields = method_fields(reproduce.Method("x", "finetune"))
  assert "optimizer" not in fields and "max_curve_step" not in fields
  assert fields["label"] == "x"
  assert method_fields(reproduce.Method("x", "meta", weights="w", max_curve_step=9)
                       )["max_curve_step"] == 9
  adam = method_fields(reproduce.Method("x", "finetune", optimizer="adam"))
  assert adam["optimizer"] == "adam"
  with pytest.raises(ValueError, match="'rmsprop'"):
    dataclasses.replace(reproduce.table_config(4, "cpu-full"),
                        methods=(reproduce.Method("x", "finetune", optimizer="rmsprop"),)
                        ).validate()


def test_meta_train_config_of_the_recipe_run(tmp_path):
  root = _fake_root(tmp_path / "data", count=3)
  config = dataclasses.replace(reproduce.table_config(4, "cpu-full"), data_root=str(root))
  run = dataclasses.replace(config.meta_runs[1], data=reproduce.ImageSet("Urban100", 2, 3),
                            validation=(reproduce.ImageSet("Set5"),
                                        reproduce.ImageSet("Urban100", 1, 1)))
  meta = reproduce.meta_train_config(config, run, tmp_path / "runs")
  assert meta.weights == str(REPO / "pretrained" / "idn_x2.weights.h5")
  assert sorted(os.listdir(meta.data)) == ["img002.png", "img003.png"]
  first, second = meta.validation.split(",")
  assert sorted(os.listdir(first)) == ["img001.png", "img002.png", "img003.png"]
  assert sorted(os.listdir(second)) == ["img001.png"]
  assert (meta.alpha, meta.beta, meta.anchor_weight, meta.learn_step_sizes) == (0.3, 5e-6, 4.0,
                                                                              True)
  assert meta.validation_degradations == ("bicubic",) and meta.keep_validated_weights
  meta.validate()


def test_image_cache_reuses_only_matching_entries(tmp_path):
  path = tmp_path / "partial" / "m__s.jsonl"
  cache = reproduce.ImageCache(path, {"alpha": 0.1})
  cache.put({"name": "a", "psnr": {0: 30.0, 5: 30.5}, "ssim": {0: 0.9, 5: 0.91}, "seconds": 1})
  with open(path, "a", encoding="utf-8") as f:
    f.write('{"key": "cut sho')  # An interrupted write.
  again = reproduce.ImageCache(path, {"alpha": 0.1})
  assert again.get("a")["psnr"] == {0: 30.0, 5: 30.5} and again.get("b") is None
  assert reproduce.ImageCache(path, {"alpha": 0.3}).get("a") is None
  calls = []

  def compute(name, hr, lr, degradation):
    calls.append(name)
    return {0: 1.0}, {0: 0.5}, {}
  rgb = np.zeros((4, 4, 3), np.uint8)
  items = [("a", rgb, None, None), ("b", rgb, None, None)]
  columns = reproduce._columns  # pylint: disable=protected-access
  per_image = columns(items, compute, again, lambda line: None, "m")
  assert calls == ["b"] and [e["name"] for e in per_image] == ["a", "b"]
  assert reproduce.ImageCache(path, {"alpha": 0.1}).get("b")["psnr"] == {0: 1.0}


def test_paper_configs_follow_the_paper():
  from mlsr_tf.meta import maml  # pylint: disable=g-import-not-at-top
  t4 = reproduce.table_config(4, "paper")
  assert [(s.name, s.first, s.last) for s in t4.image_sets] == [("Urban100", 1, 40)]
  urban = [r for r in t4.meta_runs if r.name == "bicubic_urban100"][0]
  assert (urban.data.first, urban.data.last) == (51, 100)
  assert (urban.validation.first, urban.validation.last) == (41, 50)
  t5 = reproduce.table_config(5, "paper")
  assert t5.alpha == pytest.approx(maml.PAPER_ALPHA)
  assert t5.meta_runs[0].beta == maml.PAPER_BETA and t5.meta_runs[0].degradation == "random5x5"
  assert 1000 in [m for m in t5.methods if m.kind == "finetune"][0].steps
  assert t5.zssr == {}  # ZSSR's own defaults: up to 3,000 iterations.


@pytest.mark.parametrize("change, message", [
    (dict(table=6), "6"), (dict(preset="gpu"), "gpu"), (dict(crop=33), "33"),
    (dict(degradation="gaussian"), "gaussian"), (dict(alpha=float("nan")), "nan"),
    (dict(image_sets=(reproduce.ImageSet("Set7"),)), "Set7"),
    (dict(methods=(reproduce.Method("X", "magic"),)), "magic"),
    (dict(methods=(reproduce.Method("X", "meta", (0,), "nope"),)), "nope"),
    (dict(methods=(reproduce.Method("X", "meta", (0,)),)), "meta run ''"),
    (dict(methods=(reproduce.Method("X", "meta", (0,), weights="w", max_curve_step=-1),)),
     "max_curve_step.*-1"),
    (dict(methods=(reproduce.Method("X", "finetune", (0,), max_curve_step=True),)), "True"),
    (dict(methods=(reproduce.Method("X", "finetune", (-1,)),)), "-1"),
    (dict(zssr=dict(max_iters=0)), "0"), (dict(zssr=dict(bogus=1)), "bogus"),
])
def test_config_validation_repeats_bad_value(change, message):
  config = dataclasses.replace(reproduce.table_config(5, "cpu"), **change)
  with pytest.raises(ValueError, match=message):
    config.validate()


def test_unknown_table_and_preset():
  with pytest.raises(ValueError, match="7"):
    reproduce.table_config(7, "cpu")
  with pytest.raises(ValueError, match="tpu"):
    reproduce.table_config(3, "tpu")


def _fake_results():
  config = reproduce.TableConfig(
      table=3, preset="cpu", caption="cap", image_sets=(reproduce.ImageSet("Set5"),),
      methods=(reproduce.Method("Bicubic", "bicubic"),
               reproduce.Method("IDN-ML", "meta", (0, 5), "r")),
      meta_runs=(reproduce.MetaRun("r"),), curve_steps=(0, 1, 5))
  entry = lambda name, p: {"name": name, "psnr": p, "ssim": {k: 0.9 for k in p},
                           "seconds": 2.0}
  results = {
      "Bicubic": {"Set5": reproduce._summarize([entry("a", {0: 30.0}), entry("b", {0: 32.0})])},
      "IDN-ML": {"Set5": reproduce._summarize([entry("a", {0: 31.0, 1: 31.5, 5: 32.0}),
                                               entry("b", {0: 33.0, 1: 33.5, 5: 34.0})])}}
  return config, results


def test_writers(tmp_path):
  config, results = _fake_results()
  md = reproduce.format_markdown(config, results)
  assert "| Bicubic | 31.00 / 0.9000 |" in md
  assert "| IDN-ML/0 | 32.00 / 0.9000 |" in md and "| IDN-ML/5 | 33.00 / 0.9000 |" in md
  assert "Set5 (2 img)" in md and md.startswith("**cap**")
  rows = list(csv.DictReader(io.StringIO(reproduce.format_csv(
      reproduce.table_rows(config, results)))))
  assert [(r["row"], float(r["psnr"])) for r in rows] == [
      ("Bicubic", 31.0), ("IDN-ML/0", 32.0), ("IDN-ML/5", 33.0)]
  curves = reproduce.curve_rows(config, results)
  assert [(r["steps"], r["psnr"]) for r in curves] == [(0, 32.0), (1, 32.5), (5, 33.0)]
  written = reproduce.write_outputs(config, {"config": config.to_json(), "results": results},
                                    tmp_path / "out")
  names = {p.name for p in written}
  assert {"table.md", "table.csv", "per_image.csv", "config.json", "results.json",
          "curves.csv"} <= names
  assert json.loads((tmp_path / "out" / "config.json").read_text())["table"] == 3
  assert not [p for p in (tmp_path / "out").iterdir() if ".tmp" in p.name]
  with open(tmp_path / "out" / "per_image.csv", encoding="utf-8") as f:
    per_image = list(csv.DictReader(f))
  assert len(per_image) == 2 + 2 * 3


def test_test_kernels_are_unseen_and_fixed():
  from mlsr_tf.data import degradation  # pylint: disable=g-import-not-at-top
  config = reproduce.table_config(5, "cpu")
  a = reproduce.eval_degradation(config, 3)
  b = reproduce.eval_degradation(config, 3)
  assert a.name == b.name and a.name.startswith("random5x5_test_")
  test = degradation.kernel_split("test")
  assert any(np.array_equal(a.kernel, k) for k in test)
  train = degradation.kernel_split("train")
  assert not np.any(np.all(np.isclose(train, a.kernel[None]), axis=(1, 2)))


@pytest.mark.slow
def test_tiny_end_to_end_table(tmp_path):
  root = _fake_root(tmp_path)
  config = _tiny_config(root, _tiny_weights(tmp_path))
  output = reproduce.run_table(config, tmp_path / "work", tmp_path / "out", log=lambda s: None)
  results = output["results"]
  assert set(results) == {"Bicubic", "Net", "Net-FT", "Net-ML", "ZSSR"}
  assert results["Net-ML"]["Urban100[002-003]"]["images"] == 2
  # Fine-tuning at 0 steps is the base network.
  for set_label in ("Set5", "Urban100[002-003]"):
    assert results["Net-FT"][set_label]["psnr"][0] == pytest.approx(
        results["Net"][set_label]["psnr"][0], abs=1e-9)
    assert set(results["Net-FT"][set_label]["psnr"]) == {0, 1, 2, 3}
  assert os.path.isfile(tmp_path / "work" / "m" / "model.weights.h5")
  md = (tmp_path / "out" / "table.md").read_text()
  assert "Net-ML/2" in md and "ZSSR cost" in md
  assert (tmp_path / "out" / "curves.csv").is_file()
  # Rerun: the finished meta-training run is reused, and given weights skip training.
  again = reproduce.run_table(config, tmp_path / "work", tmp_path / "out2",
                              meta_weights={"m": str(tmp_path / "work" / "m" /
                                                     "model.weights.h5")},
                              log=lambda s: None)
  assert again["meta"]["m"]["trained_here"] is False
  assert again["results"]["Net-ML"]["Set5"]["psnr"] == pytest.approx(
      results["Net-ML"]["Set5"]["psnr"])
  # A meta row that names a finished checkpoint (a shipped model) instead of a run scores
  # the same network the same way; its curve stops at max_curve_step.
  given = dataclasses.replace(config, methods=(reproduce.Method(
      "Net-ML file", "meta", (0, 2), weights=str(tmp_path / "work" / "m" / "model.weights.h5"),
      max_curve_step=1),))
  third = reproduce.run_table(given, tmp_path / "work", tmp_path / "out3", log=lambda s: None)
  assert third["meta"] == {}  # No run trained or named.
  psnr = third["results"]["Net-ML file"]["Set5"]["psnr"]
  assert set(psnr) == {0, 1, 2}  # 3 is on the table's curve but past max_curve_step.
  assert psnr == pytest.approx({k: v for k, v in results["Net-ML"]["Set5"]["psnr"].items()
                                if k in psnr})


@pytest.mark.slow
def test_tiny_table_resumes_and_uses_learned_step_sizes_and_the_idn_protocol(tmp_path):
  from mlsr_tf.evaluation import idn_protocol  # pylint: disable=g-import-not-at-top
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  root = _fake_root(tmp_path, count=2)
  y_model = registry.build_model("tiny", scale=2, channels=1)
  y_weights = str(tmp_path / "tiny_y.weights.h5")
  y_model.save_weights(y_weights)
  config = dataclasses.replace(
      _tiny_config(root, _tiny_weights(tmp_path)), degradation="bicubic", curve_steps=(), crop=0,
      image_sets=(reproduce.ImageSet("Set5"),),
      meta_runs=(reproduce.MetaRun("m", str(root / "train"), degradation="bicubic", patch=16,
                                   batch=2, inner_steps=2, iterations=2,
                                   learn_step_sizes=True),),
      methods=(reproduce.Method("Net-FT", "finetune", (0, 2), alpha=0.02),
               reproduce.Method("Y-protocol", "idn_protocol", (0, 2), model="tiny",
                                weights=y_weights),
               reproduce.Method("Net-ML", "meta", (0, 2), "m")))
  lines = []
  first = reproduce.run_table(config, tmp_path / "work", tmp_path / "out", log=lines.append)
  assert any("learned step sizes from" in line and "step_sizes.json" in line for line in lines)
  assert any(line.startswith("  [Set5 1/2] Net-FT") and line.endswith(" s)") for line in lines)
  # The protocol's step-0 column is the plain IDN-Caffe protocol score of the same image.
  hr = image_io.read_image(root / "datasets" / "Set5" / "HR" / "img001.png")
  plain = idn_protocol.score_image(y_model, hr, 2)["psnr"]
  per_image = first["results"]["Y-protocol"]["Set5"]["per_image"]
  assert per_image[0]["psnr"][0] == pytest.approx(plain, abs=1e-9)
  assert per_image[0]["psnr"][2] != per_image[0]["psnr"][0]
  # Rerun into the same folder: every image comes from the cache, with the same numbers.
  lines.clear()
  again = reproduce.run_table(config, tmp_path / "work", tmp_path / "out", log=lines.append)
  image_lines = [line for line in lines if line.startswith("  ")]
  assert image_lines and all(line.endswith("(cached)") for line in image_lines)
  for label in ("Net-FT", "Y-protocol", "Net-ML"):
    assert again["results"][label]["Set5"]["psnr"] == first["results"][label]["Set5"]["psnr"]
  # A report of what is scored so far: only cached images, nothing computed, cells counted.
  (tmp_path / "out" / "partial" / "Net-ML__Set5.jsonl").unlink()
  lines.clear()
  report = reproduce.run_table(config, tmp_path / "work", tmp_path / "out2", log=lines.append,
                               cached_only=True)
  assert report["results"] == {"Net-FT": {}, "Y-protocol": {}, "Net-ML": {}}  # Other --out.
  for path in (tmp_path / "out" / "partial").iterdir():
    (tmp_path / "out2" / "partial").mkdir(exist_ok=True)
    (tmp_path / "out2" / "partial" / path.name).write_bytes(path.read_bytes())
  (tmp_path / "out2" / "partial" / "Net-FT__Set5.jsonl").write_text(
      (tmp_path / "out" / "partial" / "Net-FT__Set5.jsonl").read_text().splitlines()[0] + "\n")
  report = reproduce.run_table(config, tmp_path / "work", tmp_path / "out2", log=lines.append,
                               cached_only=True)
  assert report["results"]["Net-FT"]["Set5"]["images"] == 1
  assert report["results"]["Y-protocol"]["Set5"]["images"] == 2
  assert report["results"]["Net-ML"] == {}
  md = (tmp_path / "out2" / "table.md").read_text()
  assert "Set5 (2 img)" in md and "(1 img)" in md and "| Net-ML/2 |" not in md
  assert not [line for line in lines if line.endswith(" s)")]  # Nothing computed.
  # Another step size is another fingerprint: recomputed, not reused.
  changed = dataclasses.replace(config, methods=(
      reproduce.Method("Net-FT", "finetune", (0, 2), alpha=0.05),))
  lines.clear()
  reproduce.run_table(changed, tmp_path / "work", tmp_path / "out", log=lines.append)
  assert not [line for line in lines if line.endswith("(cached)")]


def _tool(*args, env_root=None):
  env = dict(os.environ)
  if env_root:
    env["MLSR_DATA"] = str(env_root)
  return subprocess.run([sys.executable, "tools/reproduce.py", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_tool_dry_run_and_error(tmp_path):
  done = _tool("--table", "4", "--config", "paper", "--dry_run", "--out", str(tmp_path / "o"))
  assert done.returncode == 0, done.stderr
  config = json.loads((tmp_path / "o" / "config.json").read_text())
  assert config["table"] == 4 and config["preset"] == "paper"
  done = _tool("--table", "3", "--config", "gpu", "--out", str(tmp_path / "bad"))
  assert done.returncode == 2, done.stderr
  lines = done.stderr.strip().splitlines()
  assert lines[-1].startswith("error:") and "gpu" in lines[-1]
  assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("kwargs, word", [
    (dict(table=9, preset="cpu"), "9"), (dict(table=3, preset="cpu", meta_iterations=0), "0"),
    (dict(table=5, preset="cpu", meta_weights={"nope": "w.h5"}), "nope"),
    (dict(table=5, preset="cpu", meta_weights={"random5x5_train291": "/no/w.h5"}), "/no/w.h5"),
    (dict(table=4, preset="cpu-full", steps=[0, -5]), "-5"),
    (dict(table=4, preset="cpu-full", steps=[]), r"\[\]"),
    (dict(table=5, preset="cpu-full", sets=["Set5", "Set99"]), "Set99"),
    (dict(table=5, preset="cpu-full", methods=["ZSSR", "IDN-XL"]), "IDN-XL"),
    (dict(table=5, preset="cpu-full", methods=[]), r"\[\]"),
])
def test_run_rejects_bad_arguments_before_work(tmp_path, kwargs, word):
  root = _fake_root(tmp_path)
  with pytest.raises(ValueError, match=word):
    reproduce.run(workdir=tmp_path / "w", out_dir=tmp_path / "bad", data_root=root,
                  log=lambda s: None, **kwargs)
  assert not (tmp_path / "bad").exists() and not (tmp_path / "w").exists()


def test_part_of_a_table_by_sets_and_methods(tmp_path):
  output = reproduce.run(5, "cpu-full", tmp_path / "w", tmp_path / "o", dry_run=True,
                         sets=["Set5", "Urban100[001-020]"],
                         methods=["IDN-ML (kernels)", "IDN (idn_x2_blur) + SGD"],
                         log=lambda s: None)
  config = output["config"]
  assert [s["name"] for s in config["image_sets"]] == ["Set5", "Urban100"]
  assert [m["label"] for m in config["methods"]] == ["IDN (idn_x2_blur) + SGD",
                                                    "IDN-ML (kernels)"]  # Table order.
  assert "Image sets: Set5, Urban100[001-020] only." in config["caption"]
  assert "Methods: IDN (idn_x2_blur) + SGD, IDN-ML (kernels) only." in config["caption"]
  # The cache key of a method does not depend on which other methods or sets run.
  whole = reproduce.table_config(5, "cpu-full")
  part = reproduce._select(whole, ["Set5"], ["ZSSR"])  # pylint: disable=protected-access
  runner = reproduce._method_runner  # pylint: disable=protected-access
  assert runner(whole, whole.methods[-1], {}, {}, print, build=False)[0] == \
      runner(part, part.methods[0], {}, {}, print, build=False)[0]


def test_steps_override_is_recorded(tmp_path):
  output = reproduce.run(4, "cpu-full", tmp_path / "w", tmp_path / "o", dry_run=True,
                         steps=[20, 0, 5], log=lambda s: None)
  config = output["config"]
  assert [m["steps"] for m in config["methods"]] == [(0, 5, 20)] * 3
  assert config["curve_steps"] == (0, 1, 2, 3, 5, 10, 20)
  assert "Step counts overridden: 0/5/20" in config["caption"]
  assert json.loads((tmp_path / "o" / "config.json").read_text())["curve_steps"][-1] == 20


def test_link_image_set_and_selection(tmp_path):
  root = _fake_root(tmp_path, count=4)
  folder = tmp_path / "links"
  reproduce.link_image_set(reproduce.ImageSet("Urban100", 2, 3), folder, root)
  assert sorted(p.name for p in folder.iterdir()) == ["img002.png", "img003.png"]
  reproduce.link_image_set(reproduce.ImageSet("Urban100", 4, 4), folder, root)  # Replaces.
  assert [p.name for p in folder.iterdir()] == ["img004.png"]
  with pytest.raises(ValueError, match="only 4 images"):
    reproduce.select_files(reproduce.ImageSet("Urban100", 1, 40), root)
  config = dataclasses.replace(reproduce.table_config(3, "cpu"), data_root=str(root))
  items = reproduce.load_items(config, reproduce.ImageSet("Set5", 1, 2))
  assert [name for name, *_ in items] == ["img001", "img002"]
  name, hr, lr, deg = items[0]
  assert hr.shape == (48, 52, 3) and lr.shape == (24, 26, 3) and deg.is_bicubic


@pytest.mark.slow
def test_gray_images_are_scored_as_their_own_y_like_evaluate(tmp_path):
  """Set14's bridge is a gray file: the tables score it as evaluate.py does (gray = Y)."""
  from mlsr_tf import metrics  # pylint: disable=g-import-not-at-top
  from mlsr_tf import models_io  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import imresize  # pylint: disable=g-import-not-at-top
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  root = _fake_root(tmp_path, count=2)
  gray = synthetic.demo_image(48, 52, 7)[:, :, :1]
  image_io.write_png(root / "datasets" / "Set5" / "HR" / "img003.png", gray)
  weights = _tiny_weights(tmp_path)
  config = dataclasses.replace(
      _tiny_config(root, weights), degradation="bicubic", crop=0, curve_steps=(),
      image_sets=(reproduce.ImageSet("Set5"),), meta_runs=(),
      methods=(reproduce.Method("Bicubic", "bicubic"), reproduce.Method("Net", "base"),
               reproduce.Method("Net-FT", "finetune", (0, 1))))
  items = reproduce.load_items(config, reproduce.ImageSet("Set5"))
  name, hr, lr, _ = items[2]
  assert name == "img003" and hr.shape == (48, 52, 1) and lr.shape == (24, 26, 1)
  output = reproduce.run_table(config, tmp_path / "work", tmp_path / "out", log=lambda s: None)
  scored = {label: output["results"][label]["Set5"]["per_image"][2]["psnr"][0]
            for label in ("Bicubic", "Net", "Net-FT")}
  # Expected: evaluate.py's conventions on the same LR.
  bicubic = imresize.imresize(lr, 2)
  assert scored["Bicubic"] == pytest.approx(
      metrics.psnr_y(metrics.rgb_to_y(bicubic), metrics.rgb_to_y(hr), 2), abs=1e-9)
  repeated = metrics.psnr_y(metrics.rgb_to_y(np.repeat(bicubic, 3, axis=2)),
                            metrics.rgb_to_y(np.repeat(hr, 3, axis=2)), 2)
  assert abs(repeated - scored["Bicubic"]) > 1.0  # What the old RGB repeat scored.
  model = models_io.build_and_load("tiny", weights, 2, None)
  # evaluate.py --adapt_steps's upscaler (three equal channels in, channel mean out).
  sr = adaptation.adaptive_upscale_fn(model, items[2][3], [0], 0.05)(lr, name)["0"]
  assert sr.shape == (48, 52, 1)
  expected = metrics.psnr_y(metrics.rgb_to_y(sr), metrics.rgb_to_y(hr), 2)
  assert scored["Net"] == pytest.approx(expected, abs=1e-9)
  assert scored["Net-FT"] == pytest.approx(expected, abs=1e-6)
  # A cached score of the gray image from before this convention is recomputed; others kept.
  cache = tmp_path / "out" / "partial" / "Bicubic__Set5.jsonl"
  records = [json.loads(line) for line in cache.read_text().splitlines()]
  for record in records:
    record["entry"].pop("gray", None)
    if record["entry"]["name"] == "img003":
      record["entry"]["psnr"] = {"0": 99.0}
  cache.write_text("".join(json.dumps(r) + "\n" for r in records))
  lines = []
  again = reproduce.run_table(config, tmp_path / "work", tmp_path / "out", log=lines.append)
  bicubic_lines = [line for line in lines if "] Bicubic " in line]
  assert [line.endswith("(cached)") for line in bicubic_lines] == [True, True, False]
  assert again["results"]["Bicubic"]["Set5"]["per_image"][2]["psnr"][0] == pytest.approx(
      scored["Bicubic"], abs=1e-9)


def test_naive_steps_to_match_the_meta_network_on_the_same_images():
  config = reproduce.TableConfig(
      table=5, preset="cpu", caption="cap", image_sets=(reproduce.ImageSet("Set5"),),
      methods=(reproduce.Method("IDN-ML", "meta", (0, 5), "r"),
               reproduce.Method("SGD", "finetune", (0, 5, 100)),
               reproduce.Method("Adam", "finetune", (0, 5, 100), optimizer="adam")),
      meta_runs=(reproduce.MetaRun("r"),), curve_steps=(0, 5, 50, 100))
  entry = lambda name, p: {"name": name, "psnr": p, "ssim": {k: 0.9 for k in p},
                           "seconds": 1.0}
  results = {
      "IDN-ML": {"Set5": reproduce._summarize([entry("a", {0: 30.0, 5: 31.0}),
                                               entry("b", {0: 32.0, 5: 33.0})])},
      # Only image a is shared: b's target is not used, c's curve neither.
      "SGD": {"Set5": reproduce._summarize([
          entry("a", {0: 29.0, 5: 29.5, 50: 30.0, 100: 32.0}),
          entry("c", {0: 1.0, 5: 1.0, 50: 1.0, 100: 1.0})])},
      "Adam": {"Set5": reproduce._summarize([entry("a", {0: 29.0, 5: 29.2, 50: 29.4,
                                                         100: 29.6})])}}
  matches = reproduce.naive_steps_to_match(config, results)
  assert [(m["naive"], m["images"], m["target"], m["last_read_out"]) for m in matches] == [
      ("SGD", 1, 31.0, 100), ("Adam", 1, 31.0, 100)]
  assert matches[0]["naive_steps"] == pytest.approx(75.0)  # Read at 50 too, not only 5, 100.
  assert matches[1]["naive_steps"] is None
  md = reproduce.format_markdown(config, results)
  assert ("- Set5, IDN-ML at 5 steps: SGD about 75 (1 img, 31.00 dB); Adam not within 100 "
          "(1 img, 31.00 dB)") in md
  bicubic_only = reproduce.format_markdown(*_fake_results())
  assert "Naive steps" not in bicubic_only  # No naive method, no line.


def test_the_validation_screen_holds_out_table_5s_images_and_kernels():
  from mlsr_tf.data import degradation  # pylint: disable=g-import-not-at-top
  screen, table = reproduce.table_config(5, "cpu-val"), reproduce.table_config(5, "cpu-full")
  # Same network, meta run and step-size protocol as Table 5; other images and kernels.
  assert screen.weights == table.weights and screen.meta_runs == table.meta_runs
  assert [m.meta_run for m in screen.methods] == [table.meta_runs[0].name]
  # A candidate without learned step sizes is adapted at the config's alpha: the caption says so.
  assert screen.methods[0].alpha is None and f"alpha {screen.alpha:.1f} when" in screen.caption
  tested = {(s.name, i) for s in table.image_sets for i in range(s.first, (s.last or 100) + 1)}
  screened = {(s.name, i) for s in screen.image_sets for i in range(s.first, s.last + 1)}
  assert len(screened) == 20 and not screened & tested
  validation, test = degradation.kernel_split("validation"), degradation.kernel_split("test")
  for index in range(5):
    kernel = reproduce.eval_degradation(screen, index)
    assert kernel.name.startswith("random5x5_validation_")
    assert np.all(np.isclose(validation, kernel.kernel[None]), axis=(1, 2)).any()
    assert not np.all(np.isclose(test, kernel.kernel[None]), axis=(1, 2)).any()
    assert reproduce.eval_degradation(table, index).name.startswith("random5x5_test_")
