"""The Payments API on the wire: request and response models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from orderhub.kit.wire import Amount, Text100

_STRICT_INPUT = ConfigDict(extra="forbid")

IntentId = Annotated[StrictStr, Field(min_length=1, max_length=255, examples=["pi_3Mtw..."])]


def _positive(value: Any) -> Any:
    if value <= 0:
        raise PydanticCustomError("amount_positive", "must be greater than 0")
    return value


class ConfirmIn(BaseModel):
    model_config = _STRICT_INPUT

    paymentIntentId: IntentId
    orderId: Text100
    paymentMethod: Annotated[StrictStr, Field(min_length=1, max_length=255)] | None = Field(
        default=None, examples=["pm_card_visa"]
    )


class RefundIn(BaseModel):
    model_config = _STRICT_INPUT

    orderId: Text100
    amount: (
        Annotated[
            Amount,
            AfterValidator(_positive),
            WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "examples": [9.97]}),
        ]
        | None
    ) = Field(default=None, description="major units; default: everything not yet refunded")
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


class ConfirmOut(BaseModel):
    status: str = Field(examples=["succeeded"])
    nextAction: dict[str, Any] | None = None


class RefundOut(BaseModel):
    id: str = Field(examples=["re_3Mtw..."])
    amount: int = Field(description="minor units", examples=[10997])
    status: str = Field(examples=["succeeded"])
    created: int = Field(description="Unix seconds", examples=[1701234567])


class PaymentIntentOut(BaseModel):
    id: str
    amount: int = Field(description="minor units", examples=[10997])
    currency: str
    status: str
    created: int
    metadata: dict[str, str]


class WebhookReceivedOut(BaseModel):
    received: Literal[True] = True
