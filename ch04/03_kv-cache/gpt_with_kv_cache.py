"""키·값 캐시(KV 캐시)를 쓰는 GPT: 4장 클래스를 상속해 캐시만 더한다.

생성할 때 토큰을 하나 붙일 때마다 전체 시퀀스를 다시 계산하는 대신, 이미 계산한 토큰의 키와 값을
층마다 보관해 두고 새 토큰 하나의 쿼리·키·값만 계산한다. 새 매개변수는 없으므로 ``GPTModel`` 과
``state_dict`` 를 그대로 주고받을 수 있다.

문맥 길이를 넘어서면: ``generate_text_simple`` 은 마지막 ``context_size`` 토큰만 잘라 위치 0부터 다시
번호를 매긴다. 창이 한 칸 밀릴 때마다 모든 토큰의 위치 임베딩이 바뀌고, 그러면 모든 층의 키와 값도
바뀌므로 캐시해 둔 값은 더는 쓸 수 없다. 그래서 ``generate_text_simple_cached`` 는 창이 가득 찬 뒤에는
캐시를 비우고 잘린 창 전체를 다시 계산한다. 이 구간의 속도는 캐시가 없을 때와 같지만, 만드는 토큰은
``generate_text_simple`` 과 정확히 같다.
"""

import torch
import torch.nn.functional as F
from torch import nn

from llm_from_scratch.ch03 import MultiHeadAttention
from llm_from_scratch.ch04 import GPTModel, TransformerBlock

__all__ = [
    "GPTModelWithKVCache",
    "MultiHeadAttentionWithKVCache",
    "TransformerBlockWithKVCache",
    "generate_text_simple_cached",
]


def _rebuild_with_same_weights(old, factory):
    """``factory()`` 로 새 모듈을 만들고 ``old`` 의 가중치를 옮겨 담는다.

    새 모듈의 초기화가 전역 난수 상태를 건드리지 않으므로, 같은 시드로 만든 4장 모델과 가중치가 같아진다.
    """
    with torch.random.fork_rng(devices=[]):
        new = factory()
    new.load_state_dict(old.state_dict())
    return new


class MultiHeadAttentionWithKVCache(MultiHeadAttention):
    """3장의 멀티 헤드 어텐션에 키·값 캐시를 더한 것. ``use_cache=False`` 면 3장과 똑같이 동작한다."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__(d_in, d_out, context_length, dropout, num_heads, qkv_bias)
        self.cache_k = None
        self.cache_v = None

    @classmethod
    def from_attention(cls, att):
        """3장 ``MultiHeadAttention`` 과 같은 크기·가중치의 캐시 버전을 만든다."""
        return _rebuild_with_same_weights(
            att,
            lambda: cls(
                d_in=att.W_query.in_features,
                d_out=att.d_out,
                context_length=att.mask.shape[0],
                dropout=att.dropout.p,
                num_heads=att.num_heads,
                qkv_bias=att.W_query.bias is not None,
            ),
        )

    def reset_cache(self):
        self.cache_k = None
        self.cache_v = None

    def forward(self, x, use_cache=False):
        if not use_cache:
            return super().forward(x)

        b, num_tokens, _ = x.shape
        num_cached = 0 if self.cache_k is None else self.cache_k.shape[2]
        total = num_cached + num_tokens
        if total > self.mask.shape[0]:
            raise ValueError(
                f"캐시된 토큰 {num_cached}개와 새 토큰 {num_tokens}개를 합친 {total}개가 "
                f"context_length {self.mask.shape[0]}보다 깁니다. 캐시를 비우고 입력을 자르세요."
            )
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        if self.cache_k is not None:
            keys = torch.cat([self.cache_k, keys], dim=2)
            values = torch.cat([self.cache_v, values], dim=2)
        self.cache_k, self.cache_v = keys, values

        # 새 토큰은 위치 num_cached 부터 시작한다. 토큰 하나를 붙일 때는 그 토큰이 앞의 모든 토큰을 봐도 되므로
        # 마스크가 필요 없다. 여러 개일 때만 마스크에서 그 행들을 잘라 쓴다(True = 볼 수 있음).
        # 점수, 소프트맥스, 가중합은 3장과 같은 계산을 커널 하나(scaled_dot_product_attention)로 한다:
        # 한 토큰씩 생성할 때는 연산 하나하나의 고정 비용이 눈에 띄기 때문이다.
        visible = None if num_tokens == 1 else ~self.mask[num_cached:total, :total].bool()
        dropout_p = self.dropout.p if self.training else 0.0
        context_vec = F.scaled_dot_product_attention(queries, keys, values, attn_mask=visible, dropout_p=dropout_p)
        context_vec = context_vec.transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class TransformerBlockWithKVCache(TransformerBlock):
    """4장 트랜스포머 블록에서 어텐션만 캐시 버전으로 바꿔 끼운 것."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.att = MultiHeadAttentionWithKVCache.from_attention(self.att)

    def forward(self, x, use_cache=False):
        x = x + self.drop_shortcut(self.att(self.norm1(x), use_cache=use_cache))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPTModelWithKVCache(GPTModel):
    """KV 캐시를 쓸 수 있는 ``GPTModel``. 매개변수 이름과 모양이 같아 ``state_dict`` 를 서로 바꿔 쓸 수 있다.

    ``model(idx)`` 는 4장과 똑같이 전체를 계산하고 캐시를 건드리지 않는다. ``model(idx, use_cache=True)`` 는
    캐시에 이미 있는 토큰 뒤에 ``idx`` 를 이어 붙인 것으로 보고 새 토큰들의 로짓만 돌려준다.
    """

    def __init__(self, cfg):
        super().__init__(cfg)
        self.trf_blocks = nn.Sequential(
            *[_rebuild_with_same_weights(block, lambda: TransformerBlockWithKVCache(cfg)) for block in self.trf_blocks]
        )
        self.current_pos = 0  # 캐시에 들어 있는 토큰 수 = 다음 토큰의 위치

    def reset_kv_cache(self):
        """모든 층의 캐시를 비운다. 새 프롬프트를 시작하기 전에 부른다."""
        for block in self.trf_blocks:
            block.att.reset_cache()
        self.current_pos = 0

    def forward(self, in_idx, use_cache=False):
        if not use_cache:
            return super().forward(in_idx)

        seq_len = in_idx.shape[1]
        context_length = self.pos_emb.num_embeddings
        if self.current_pos + seq_len > context_length:
            raise ValueError(
                f"캐시된 토큰 {self.current_pos}개와 새 토큰 {seq_len}개를 합치면 "
                f"context_length {context_length}보다 깁니다. reset_kv_cache() 로 캐시를 비우고 입력을 자르세요."
            )
        positions = torch.arange(self.current_pos, self.current_pos + seq_len, device=in_idx.device)
        x = self.drop_emb(self.tok_emb(in_idx) + self.pos_emb(positions))
        for block in self.trf_blocks:
            x = block(x, use_cache=True)
        self.current_pos += seq_len
        return self.out_head(self.final_norm(x))


def generate_text_simple_cached(model, idx, max_new_tokens, context_size=None):
    """``generate_text_simple`` 과 같은 토큰을 KV 캐시로 빠르게 만든다(탐욕적 디코딩).

    시작할 때와 끝날 때 캐시를 비우므로 프롬프트마다 새로 시작한다.

    Args:
        model: ``GPTModelWithKVCache``.
        idx: (배치, 토큰 수) 토큰 ID 텐서.
        max_new_tokens: 새로 만들 토큰 수.
        context_size: 한 번에 볼 최대 토큰 수. None 이면 모델의 context_length.
    """
    if not isinstance(model, GPTModelWithKVCache):
        raise TypeError(f"model 은 GPTModelWithKVCache 여야 합니다(받은 것: {type(model).__name__}).")
    if context_size is None:
        context_size = model.pos_emb.num_embeddings
    # inference_mode 는 no_grad 보다 연산마다 드는 부가 비용이 작다(토큰 하나씩 계산할 때는 이 비용이 눈에 띈다)
    with torch.inference_mode():
        for step in range(max_new_tokens):
            if step == 0 or idx.shape[1] > context_size:
                # 처음이거나 창이 밀렸다(위치가 모두 바뀜): 잘린 창 전체를 새로 계산해 캐시를 채운다
                model.reset_kv_cache()
                logits = model(idx[:, -context_size:], use_cache=True)
            else:
                # 앞 토큰들은 캐시에 있다: 방금 붙인 토큰 하나만 계산한다
                logits = model(idx[:, -1:], use_cache=True)
            next_token = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
            idx = torch.cat((idx, next_token), dim=1)
    model.reset_kv_cache()
    return idx.clone()  # inference_mode 밖에서 복사해, 돌려받은 텐서를 훈련 코드에서도 쓸 수 있게 한다
