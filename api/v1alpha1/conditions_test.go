package v1alpha1

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// metav1.Condition refuses a type or reason outside this pattern, which would make every status
// write of the controllers fail; the constants are checked here rather than in a cluster.
var conditionToken = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`)

func TestConditionTypesAndReasonsAreValidConditionTokens(t *testing.T) {
	for _, v := range []string{
		ConditionReady, ConditionWarning, ConditionExceeded,
		ReasonReady, ReasonPending, ReasonInvalidSpec, ReasonSecretNotFound, ReasonSecretKeyMissing,
		ReasonProviderNotFound, ReasonProviderNotReady, ReasonModelNotFound, ReasonUnpricedModel,
		ReasonDuplicateModel, ReasonNoReadyTargets, ReasonWithinBudget, ReasonThresholdReached,
		ReasonBudgetExceeded, ReasonUsageUnavailable,
	} {
		require.Regexp(t, conditionToken, v)
	}
}
