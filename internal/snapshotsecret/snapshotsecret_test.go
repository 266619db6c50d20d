package snapshotsecret

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPartNamesListsTheHeadThenEveryPart(t *testing.T) {
	names := PartNames("snap")
	require.Len(t, names, MaxParts)
	require.Equal(t, "snap", names[0])
	require.Equal(t, "snap-1", names[1])
	require.Equal(t, "snap-"+strconv.Itoa(MaxParts-1), names[MaxParts-1])
}
