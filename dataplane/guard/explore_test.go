package guard
import ("testing";"fmt")
func TestExplore(t *testing.T){
 d:=NewDetector(DetectorOptions{})
 for _,s:=range []string{
  "mail john.smith@example.com now", "call (415) 555-2671 or +44 20 7946 0958", "+1 415-555-2671", "1-800-555-0199",
  "card 4111 1111 1111 1111 and 378282246310005", "ssn 123-45-6788", "iban DE89 3704 0044 0532 0130 00 ok", "GB82WEST12345698765432",
  "ip 192.168.1.1 and 2001:db8::1 and ::1", "version 1.2.3.4", "key sk-proj-abcdefghijklmnop1234567890 AKIAIOSFODNN7EXAMPLE",
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
  "token wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY done", "date 2024-01-15 10:30:00", "order #12345678901",
  "uuid 123e4567-e89b-12d3-a456-426614174000", "sha e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----",
  "std::vector and a::b and 12:30:45 and 00:1a:2b:3c:4d:5e", "030 12345678", "+49 30 12345678", "01 23 45 67 89", "+33 1 23 45 67 89",
  "07700 900123", "+91 98765 43210", "0412 345 678", "+61 412 345 678", "xoxb-1234567890-abcdefghij", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
  "AIzaSyA1234567890abcdefghijklmnopqrstuv", "getUserAccountBalanceForCustomer2023Q4Report",
 }{ r,sp:=d.Redact(s); fmt.Printf("%q\n   -> %q %v\n", s, r, sp)}
}
