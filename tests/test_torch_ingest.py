"""LayerTable.from_torch / describe_torch: rows, hand counts, agreement with accelerate's
compute_module_sizes, tied weights, no_split, and the errors for bad inputs."""

from __future__ import annotations

import pickle
import warnings
import re

import pytest

torch = pytest.importorskip("torch", reason='torch is an optional extra: '
                                           'pip install "layerwise_fast[torch]"')
nn = torch.nn

import layerwise_fast as lf  # noqa: E402
from layerwise_fast.errors import LayerTooLargeError  # noqa: E402
from layerwise_fast.torch_ingest import (  # noqa: E402
    BlockTooLargeError,
    ModuleTraceError,
    describe_torch,
)


class Block(nn.Module):
    """Pre-norm MLP block with a residual: LayerNorm, Linear(h, 4h), GELU, Linear(4h, h)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.up = nn.Linear(hidden, 4 * hidden)
        self.act = nn.GELU()
        self.down = nn.Linear(4 * hidden, hidden)

    def forward(self, x):
        return x + self.down(self.act(self.up(self.norm(x))))


class TinyLM(nn.Module):
    """Embedding, blocks, final norm and a head tied to the embedding (GPT-2's layout)."""

    def __init__(self, vocab: int = 100, hidden: int = 16, layers: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.blocks = nn.ModuleList(Block(hidden) for _ in range(layers))
        self.final_norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))


class ConvNet(nn.Module):
    """Conv, batch norm (with buffers), ReLU, pooling and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, images):
        return self.fc(self.pool(self.relu(self.bn(self.conv(images)))).flatten(1))


def _meta(factory, *args):
    with torch.device("meta"):
        return factory(*args)


IDS = torch.zeros(2, 8, dtype=torch.long)  # 16 tokens


# -- rows and hand counts -------------------------------------------------------------


def test_leaf_rows_follow_execution_order_with_hand_counts() -> None:
    layers = describe_torch(_meta(TinyLM), IDS)
    table = layers.table
    assert layers.names[:5] == ["embed", "blocks.0.norm", "blocks.0.up", "blocks.0.act",
                                "blocks.0.down"]
    assert layers.names[-2:] == ["final_norm", "head"]
    assert len(table) == 1 + 3 * 4 + 2
    rows = {record["name"]: record for record in table.to_records()}
    assert rows["embed"] == dict(
        name="embed", kind="Embedding", params=100 * 16, weight_dtype="fp32",
        act_elems_per_token=16, buffer_bytes=0, flops_per_token=0, out_channels=100,
        vector_params=0, tied_params=0)
    assert rows["blocks.0.up"] == dict(
        name="blocks.0.up", kind="Linear", params=16 * 64 + 64, weight_dtype="fp32",
        act_elems_per_token=64, buffer_bytes=0, flops_per_token=0, out_channels=64,
        vector_params=64, tied_params=0)
    assert rows["blocks.0.norm"]["params"] == rows["blocks.0.norm"]["vector_params"] == 32
    assert rows["blocks.0.act"]["params"] == 0 and rows["blocks.0.act"]["act_elems_per_token"] == 64
    assert layers.tokens == 16
    assert set(layers.reasons) == {"leaf"}


def test_tied_head_owns_nothing_and_records_the_shared_matrix() -> None:
    layers = describe_torch(_meta(TinyLM), IDS)
    head = layers.table.to_records()[-1]
    assert (head["params"], head["tied_params"], head["out_channels"]) == (0, 1600, 100)
    assert head["act_elems_per_token"] == 100
    assert layers.tied == (("embed", "head"),)
    unique = sum(p.numel() for p in TinyLM().parameters())  # parameters() counts tied once
    assert layers.table.total_params == unique


def test_block_granularity_keeps_container_elements_whole() -> None:
    layers = describe_torch(_meta(TinyLM), IDS, granularity="block")
    assert layers.names == ["embed", "blocks.0", "blocks.1", "blocks.2", "final_norm", "head"]
    assert layers.reasons == ("leaf", "block", "block", "block", "leaf", "leaf")
    block = layers.table.to_records()[1]
    assert block["kind"] == "Block"
    assert block["params"] == 32 + (16 * 64 + 64) + (64 * 16 + 16)
    assert block["vector_params"] == 32 + 64 + 16
    assert block["out_channels"] == 64 + 16
    assert block["act_elems_per_token"] == 16  # its output


def test_peak_activations_count_the_widest_output_inside_a_row() -> None:
    layers = describe_torch(_meta(TinyLM), IDS, granularity="block", activations="peak")
    assert layers.table.act_elems_per_token.tolist() == [16, 64, 64, 64, 16, 100]


def test_no_split_keeps_a_class_whole_at_leaf_granularity() -> None:
    for no_split in (["Block"], [Block]):
        layers = describe_torch(_meta(TinyLM), IDS, no_split=no_split)
        assert layers.names == ["embed", "blocks.0", "blocks.1", "blocks.2", "final_norm",
                                "head"]
        assert layers.reasons[1:4] == ("no_split",) * 3


def test_rows_are_ordered_by_first_call_not_registration() -> None:
    class Reversed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.second = nn.Linear(4, 2)
            self.first = nn.Linear(3, 4)

        def forward(self, x):
            return self.second(self.first(x))

    layers = describe_torch(Reversed(), torch.ones(5, 3))
    assert layers.names == ["first", "second"]
    assert layers.table.act_elems_per_token.tolist() == [4, 2]
    assert layers.tokens == 5  # (batch, features): one token per row


def test_conv_and_batch_norm_buffers_by_hand() -> None:
    layers = describe_torch(_meta(ConvNet), torch.ones(2, 3, 10, 10), tokens=2)
    rows = {record["name"]: record for record in layers.table.to_records()}
    assert rows["conv"]["params"] == 8 * 3 * 3 * 3 + 8
    assert rows["conv"]["out_channels"] == 8
    assert rows["conv"]["act_elems_per_token"] == 8 * 8 * 8  # (2, 8, 8, 8) / 2 tokens
    # running_mean and running_var: 8 float32 each; num_batches_tracked: one int64.
    assert rows["bn"]["params"] == 16 and rows["bn"]["buffer_bytes"] == 8 * 4 * 2 + 8
    assert rows["fc"]["act_elems_per_token"] == 10


def test_token_counting_rule_and_override() -> None:
    model = _meta(TinyLM)
    assert describe_torch(model, IDS).tokens == 16  # integer ids: every element
    floats = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
    assert describe_torch(floats, torch.ones(2, 8, 16)).tokens == 16  # all but the last dim
    assert describe_torch(floats, {"input": torch.ones(2, 8, 16)}).tokens == 16
    override = describe_torch(model, IDS, tokens=4)
    assert override.tokens == 4
    assert override.table.act_elems_per_token[0] == 2 * 8 * 16 // 4
    odd = describe_torch(nn.Sequential(nn.Linear(16, 3)), torch.ones(1, 2, 16), tokens=4)
    assert odd.table.act_elems_per_token.tolist() == [2]  # 6 elements / 4 tokens, rounded up


def test_precisions_are_read_and_can_be_overridden() -> None:
    model = _meta(TinyLM).to(torch.bfloat16)
    assert set(describe_torch(model, IDS).table.weight_dtype) == {"bf16"}
    assert set(describe_torch(model, IDS, weight_dtype="int8").table.weight_dtype) == {"int8"}


def test_top_level_tensors_join_the_first_row() -> None:
    class WithToken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
            self.register_buffer("scale", torch.ones(8))
            self.proj = nn.Linear(8, 8)
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            return self.out(self.proj(torch.cat([self.cls_token.expand(x.shape[0], 1, 8), x],
                                                1) * self.scale))

    layers = describe_torch(WithToken(), torch.ones(2, 4, 8))
    assert layers.keys == (("proj", "cls_token", "scale"), ("out",))
    assert layers.table.params.tolist() == [72 + 8, 18]
    assert layers.table.buffer_bytes.tolist() == [32, 0]


def test_a_module_owning_tensors_and_children_is_one_row() -> None:
    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = nn.Parameter(torch.ones(8))
            self.inner = nn.Linear(8, 8)

        def forward(self, x):
            return self.inner(x) * self.gate

    model = nn.Sequential(Gated(), nn.Linear(8, 8))
    layers = describe_torch(model, torch.ones(3, 8))
    assert layers.names == ["0", "1"]
    assert layers.reasons == ("owns tensors", "leaf")
    assert layers.table.params.tolist() == [80, 72]


def test_uncalled_modules_with_tensors_go_last() -> None:
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.spare = nn.Linear(4, 4)
            self.used = nn.Linear(4, 4)
            self.idle = nn.ReLU()

        def forward(self, x):
            return self.used(x)

    layers = describe_torch(Unused(), torch.ones(2, 4))
    assert layers.names == ["used", "spare"]
    assert layers.uncalled == ("spare",)
    assert layers.calls == (1, 0)


def test_real_weights_are_left_untouched_and_hooks_removed() -> None:
    torch.manual_seed(0)
    model = TinyLM()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    layers = describe_torch(model, IDS)
    assert layers.table == describe_torch(_meta(TinyLM), IDS).table
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(not sub._forward_hooks and not sub._forward_pre_hooks for sub in model.modules())
    assert model.embed.weight.device.type == "cpu"


def test_from_torch_classmethod_returns_the_table() -> None:
    model = _meta(TinyLM)
    assert lf.LayerTable.from_torch(model, IDS, granularity="block") == describe_torch(
        model, IDS, granularity="block").table


class ScaledEmbedding(nn.Embedding):
    """A word embedding scaled by sqrt(hidden), as several decoder families write it."""

    def forward(self, ids):
        return super().forward(ids) * self.embedding_dim ** 0.5


class ProjectedEmbedding(nn.Embedding):
    """An embedding subclass that also owns a projection: more than its table."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__(vocab, hidden)
        self.project = nn.Parameter(torch.empty(hidden, hidden))

    def forward(self, ids):
        return super().forward(ids) @ self.project


@pytest.mark.parametrize(("embedding", "kind", "lookup"),
                         [(ScaledEmbedding, "Embedding", True),
                          (ProjectedEmbedding, "ProjectedEmbedding with other tensors", False)])
def test_an_embedding_subclass_is_a_lookup_when_it_holds_only_its_table(
        embedding: type, kind: str, lookup: bool) -> None:
    model = _meta(TinyLM)
    model.embed = _meta(embedding, 100, 16)
    model.head.weight = model.embed.weight
    table = describe_torch(model, IDS).table
    assert table.kind[0] == kind
    plan = lf.plan(table, batch=2, sequence=8, granularity=1)
    assert (0 in plan.lookups.layers) is lookup
    held = 2 * 8 * 16 * 4  # 16 rows of 16 fp32 values at the 8-token chunk, batch 2
    assert plan.weights[0] == (held if lookup else 100 * 16 * 4 + 16 * 16 * 4)


class PositionedLM(nn.Module):
    """An embedding with a position table held by the top module itself."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.pos = nn.Parameter(torch.empty(8, 16))
        self.head = nn.Linear(16, 100)

    def forward(self, ids):
        return self.head(self.embed(ids) + self.pos[: ids.shape[-1]])


def test_an_embedding_row_holding_other_tensors_is_no_lookup() -> None:
    layers = describe_torch(_meta(PositionedLM), IDS)
    assert layers.keys[0] == ("embed", "pos")
    assert layers.table.kind[0] == "Embedding with other tensors"
    plan = lf.plan(layers.table, batch=2, sequence=8, granularity=1)
    assert 0 not in plan.lookups.layers
    assert plan.weights[0] == (100 * 16 + 8 * 16) * 4  # the whole table and positions


def test_a_parametrized_table_is_not_computed_and_plans_whole() -> None:
    class Normed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.utils.parametrizations.spectral_norm(nn.Embedding(100, 16))
            self.head = nn.Linear(16, 4)

        def forward(self, ids):
            return self.head(self.embed(ids))

    model = Normed().train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    table = describe_torch(model, IDS).table
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert table.kind[0] not in lf.workingset.LOOKUP_KINDS


def test_a_module_under_several_names_has_each_as_a_key() -> None:
    class Repeated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            block = nn.Linear(16, 16)
            self.embed = nn.Embedding(100, 16)
            self.layers = nn.ModuleList([block] * 3)
            self.head = nn.Linear(16, 100)

        def forward(self, ids):
            x = self.embed(ids)
            for layer in self.layers:
                x = layer(x)
            return self.head(x)

    model = _meta(Repeated)
    layers = describe_torch(model, IDS)
    assert layers.keys == (("embed",), ("layers.0", "layers.1", "layers.2"), ("head",))
    assert layers.table.params.tolist() == [1600, 16 * 16 + 16, 16 * 100 + 100]
    mapping = layers.device_map([0, 1, 2, 3])
    for name in model.state_dict():  # every path of every tensor has a device
        assert any(name == key or name.startswith(key + ".") for key in mapping), name


# -- agreement with accelerate --------------------------------------------------------


@pytest.mark.parametrize("granularity", ["leaf", "block"])
@pytest.mark.parametrize("factory", [TinyLM, ConvNet], ids=["tiny_lm", "conv_net"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_bytes_agree_with_accelerate_compute_module_sizes(factory, granularity, dtype) -> None:
    utils = pytest.importorskip("accelerate.utils", reason="accelerate is an optional extra")
    model = _meta(factory).to(dtype)
    example = IDS if factory is TinyLM else torch.ones(2, 3, 10, 10, dtype=dtype)
    layers = describe_torch(model, example, granularity=granularity)
    sizes = utils.compute_module_sizes(model)
    width = {"fp32": 4, "bf16": 2}
    ours = [params * width[precision] + buffers for params, precision, buffers in zip(
        layers.table.params.tolist(), layers.table.weight_dtype.tolist(),
        layers.table.buffer_bytes.tolist())]
    assert ours == [sizes[name] for name in layers.names]
    assert sum(ours) == sizes[""]


# -- errors ---------------------------------------------------------------------------


def test_a_forward_that_reads_values_cannot_be_traced() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = nn.Linear(4, 4)
            self.gate = nn.Linear(4, 1)

        def forward(self, x):
            x = self.first(x)
            if self.gate(x).sum().item() > 0:
                return -x
            return x

    with pytest.raises(ModuleTraceError, match=re.escape(
            "cannot run Branchy.forward on the meta device with the example inputs (in the "
            "top-level forward): RuntimeError: Tensor.item() cannot be called on meta "
            "tensors. Meta tensors have shapes but no values")) as caught:
        describe_torch(Branchy(), torch.ones(2, 4))
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_trace_error_names_the_innermost_module() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(5, 2)))
    with pytest.raises(ModuleTraceError, match=re.escape(
            "(inside module '1.0' (Linear)): RuntimeError: ")):
        describe_torch(model, torch.ones(2, 4))


def test_a_no_split_class_larger_than_the_capacity_is_named() -> None:
    layers = describe_torch(_meta(TinyLM), IDS, no_split=["Block"])
    sizes = lf.working_set(layers.table, batch=2, chunk_tokens=8, act_bytes=4,
                           default_buffers={})
    block_bytes = int(sizes.totals()[1])
    capacity = block_bytes - 1
    with pytest.raises(BlockTooLargeError, match=re.escape(
            f"layer 1 ('blocks.0', Block, kept whole because no_split names 'Block') needs "
            f"{block_bytes} bytes, more than the capacity of {capacity} bytes (over by 1); "
            f"no plan can cut inside it")) as caught:
        layers.check_fits(sizes, capacity)
    error = caught.value
    assert isinstance(error, LayerTooLargeError)
    assert (error.layer, error.name, error.kind, error.reason) == (1, "blocks.0", "Block",
                                                                    "no_split")
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.reason == "no_split"
    layers.check_fits(sizes, int(sizes.totals().max()))  # the largest row fits exactly
    with pytest.raises(LayerTooLargeError, match="^layer 1 needs"):
        lf.greedy(sizes, capacity)  # the partitioner agrees on the row


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(granularity="layer"), ValueError, "granularity must be one of ('leaf', 'block')"),
        (dict(activations="input"), ValueError, "activations must be one of ('output', 'peak')"),
        (dict(weight_dtype="fp64"), ValueError, "weight_dtype must be one of"),
        (dict(no_split=["Blok"]), ValueError, "no_split names 'Blok', which is no class in "
                                              "the module (its classes: Block, "),
        (dict(no_split="Block"), TypeError, "no_split must be a collection of classes"),
        (dict(no_split=["TinyLM"]), ValueError, "no_split names 'TinyLM', the class of the "
                                                "module itself"),
        (dict(tokens=0), ValueError, "tokens must be positive, got 0"),
        (dict(tokens=2.0), TypeError, "tokens must be an int, got float 2.0"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message) -> None:
    with pytest.raises(error, match="^" + re.escape(message)):
        describe_torch(_meta(TinyLM), IDS, **kwargs)


def test_tokens_may_be_a_numpy_int() -> None:
    import numpy as np
    layers = describe_torch(_meta(TinyLM), IDS, tokens=np.int64(4))
    assert layers.tokens == 4 and type(layers.tokens) is int


def test_bad_modules_and_inputs_are_named() -> None:
    with pytest.raises(TypeError, match="^module must be a torch.nn.Module, got dict"):
        describe_torch({}, IDS)
    with pytest.raises(ValueError, match=re.escape("the module (Linear) has no submodules")):
        describe_torch(nn.Linear(2, 2), torch.ones(1, 2))
    with pytest.raises(ValueError, match="^the example inputs hold no tensor"):
        describe_torch(_meta(TinyLM), (None,))
    with pytest.raises(TypeError, match="^example_inputs must be a tensor, a tuple"):
        describe_torch(_meta(TinyLM), 3)
    with pytest.raises(ValueError, match=re.escape(
            "row 'embed' (Embedding) holds float64 parameters, which a layer table "
            "cannot record")):
        describe_torch(_meta(TinyLM).double(), IDS)
    mixed = _meta(TinyLM)
    mixed.blocks[0].up.bias.data = mixed.blocks[0].up.bias.data.half()
    with pytest.raises(ValueError, match=re.escape(
            "row 'blocks.0' (Block) mixes parameter precisions fp16, fp32")):
        describe_torch(mixed, IDS, granularity="block")


class _Symmetric(nn.Module):
    def forward(self, weight):
        return weight.triu() + weight.triu(1).transpose(0, 1)


def test_a_parametrized_module_is_one_row_with_its_own_output() -> None:
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(256, 256, bias=False)
            self.b = nn.Linear(256, 4)
            nn.utils.parametrize.register_parametrization(self.a, "weight", _Symmetric())

        def forward(self, x):
            return self.b(self.a(x))

    layers = describe_torch(Two(), torch.zeros(1, 8, 256))
    assert layers.names == ["a", "b"]
    assert layers.reasons[0] == "owns tensors"
    assert layers.table.act_elems_per_token.tolist() == [256, 4]
    assert layers.table.params.tolist() == [256 * 256, 256 * 4 + 4]


def test_state_the_forward_changes_on_its_modules_is_undone() -> None:
    class Rotary(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cached = 0
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            n = x.shape[1]
            if n > self.cached:  # a cache rebuilt for longer inputs, as some models do
                self.register_buffer("cos", torch.arange(n, dtype=x.dtype), persistent=False)
                self.cached = n
            return self.proj(x) * self.cos[:n, None]

    model = nn.Sequential(Rotary(), nn.Linear(8, 2))
    x = torch.ones(1, 6, 8)
    describe_torch(model, x)
    assert model[0].cached == 0 and "cos" not in model[0]._buffers
    assert all(not t.is_meta for t in (*model.parameters(), *model.buffers()))
    assert model(x).shape == (1, 6, 2)  # still runs on real tensors


def test_attributes_and_buffers_the_forward_replaces_are_put_back() -> None:
    class Recomputed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 8)
            self.register_buffer("scale", torch.ones(8))
            self.last = torch.zeros(8)  # a tensor attribute, set anew by every forward

        def forward(self, x):
            self.scale = torch.full((8,), 2.0)  # replaces the registered buffer
            self.last = x.sum(dim=(0, 1))
            return self.lin(x) * self.scale

    block = Recomputed()
    scale, last = block.scale, block.last
    model = nn.Sequential(block, nn.Linear(8, 2))
    describe_torch(model, torch.ones(1, 3, 8))
    assert block.scale is scale and block.last is last
    assert model(torch.ones(1, 3, 8)).shape == (1, 3, 2)


def test_a_buffer_held_by_two_rows_counts_in_each() -> None:
    class UsesMask(nn.Module):
        def __init__(self, mask: torch.Tensor) -> None:
            super().__init__()
            self.register_buffer("mask", mask, persistent=False)
            self.lin = nn.Linear(16, 16)

        def forward(self, x):
            return self.lin(x) * self.mask

    mask = torch.ones(16)
    model = nn.Sequential(UsesMask(mask), UsesMask(mask))
    layers = describe_torch(model, torch.zeros(1, 4, 16), no_split=[UsesMask])
    assert layers.table.buffer_bytes.tolist() == [64, 64]


def test_a_lazy_module_is_refused_before_tracing() -> None:
    model = nn.Sequential(nn.LazyLinear(8), nn.Linear(8, 2))
    with pytest.raises(ModuleTraceError, match=r"'0\.weight' is uninitialized \(a lazy module "
                                               r"such as LazyLinear\): .* run the module once"):
        describe_torch(model, torch.zeros(1, 4, 16))


def test_split_points_must_be_called_once() -> None:
    class Reuses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.shared, self.c, self.unused = (nn.Linear(8, 8) for _ in range(4))

        def forward(self, x):
            return self.c(self.shared(self.shared(self.a(x))))

    layers = describe_torch(Reuses(), torch.zeros(1, 4, 8))
    assert layers.calls == (1, 2, 1, 0)
    pytest.importorskip("torch.distributed.pipelining")
    assert list(layers.pipeline_split_spec([0, 2, 4])) == ["c"]
    with pytest.raises(ValueError, match="begins at 'shared', which the example forward "
                                         "called 2 times"):
        layers.pipeline_split_spec([0, 1, 4])
    with pytest.raises(ValueError, match="begins at 'unused', which the example forward "
                                         "never called"):
        layers.pipeline_split_spec([0, 3, 4])


def test_a_device_map_that_cuts_inside_a_module_warns() -> None:
    from layerwise_fast.torch_ingest import SplitInsideModuleWarning
    layers = describe_torch(TinyLM(), torch.zeros(1, 4, dtype=torch.long))
    names = layers.names
    assert layers.enclosing[names.index("blocks.0.up")] == ("blocks.0",)
    assert layers.enclosing[names.index("embed")] == ()
    inside = names.index("blocks.0.down")  # a group starting at down leaves up on device 0
    with pytest.warns(SplitInsideModuleWarning, match=r"puts 'blocks\.0\.act' on 0 and "
                                                      r"'blocks\.0\.down' on 1, both inside "
                                                      r"'blocks\.0'"):
        layers.device_map([0, inside, len(names)])
    between = names.index("blocks.1.norm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers.device_map([0, between, len(names)])
        describe_torch(TinyLM(), torch.zeros(1, 4, dtype=torch.long),
                       granularity="block").device_map([0, 2, 6])


def test_blocks_of_a_wrapped_model_split_without_a_warning() -> None:
    from layerwise_fast.torch_ingest import SplitInsideModuleWarning

    class ForCausalLM(nn.Module):  # the usual layout: the network one level down
        def __init__(self) -> None:
            super().__init__()
            self.model = TinyLM()

        def forward(self, ids):
            return self.model(ids)

    ids = torch.zeros(1, 4, dtype=torch.long)
    blocks = describe_torch(ForCausalLM(), ids, granularity="block")
    assert blocks.enclosing[blocks.names.index("model.blocks.1")] == ()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blocks.device_map([0, blocks.names.index("model.blocks.1"), len(blocks.names)])
    leaves = describe_torch(ForCausalLM(), ids)
    assert leaves.enclosing[leaves.names.index("model.blocks.0.down")] == ("model.blocks.0",)
    assert leaves.enclosing[leaves.names.index("model.head")] == ()
    with pytest.warns(SplitInsideModuleWarning, match="both inside 'model.blocks.0'"):
        leaves.device_map([0, leaves.names.index("model.blocks.0.down"), len(leaves.names)])
